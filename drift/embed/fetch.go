package embed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// ErrForbidden: the URI is not a file:// URI of a regular file below the
// fetcher's root (wrong scheme, a host, "..", or a symlink leading out).
var ErrForbidden = errors.New("forbidden image uri")

// FileFetcher reads images named by file:// URIs, confined to Root. Image
// URIs come from prediction events, i.e. from outside, so every way out of
// Root is refused: other schemes, "..", absolute paths elsewhere, and
// symlinks whose target lies outside Root.
type FileFetcher struct {
	// Root is the directory all images must live under.
	Root string
	// MaxBytes bounds a file's size; 0 means DefaultLimits().MaxBytes.
	MaxBytes int64
}

// Fetch returns the content of the file named by uri, e.g.
// file:///data/images/cam1/0001.jpg with Root /data/images. Errors wrap
// ErrForbidden, ErrTooLarge, fs.ErrNotExist or the context's error.
func (f FileFetcher) Fetch(ctx context.Context, uri string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p, err := filePath(uri)
	if err != nil {
		return nil, err
	}
	root, rel, err := f.resolve(p)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", uri, err)
	}
	data, err := f.read(root, rel)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", uri, err)
	}
	return data, nil
}

// filePath extracts the local path of a file:// URI (RFC 8089: empty host or
// "localhost"), refusing anything it cannot interpret unambiguously.
func filePath(uri string) (string, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("fetch: %w: %w", ErrForbidden, err)
	}
	deny := func(why string) (string, error) {
		return "", fmt.Errorf("fetch %q: %s: %w", uri, why, ErrForbidden)
	}
	switch {
	case u.Scheme != "file":
		return deny(fmt.Sprintf("scheme %q is not file", u.Scheme))
	case u.Opaque != "" || !strings.HasPrefix(u.Path, "/"):
		return deny("path is not absolute")
	case u.Host != "" && u.Host != "localhost":
		return deny(fmt.Sprintf("host %q is not local", u.Host))
	case u.User != nil || u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return deny("user, query or fragment not allowed")
	case strings.ContainsRune(u.Path, 0):
		return deny("NUL in path")
	}
	for _, seg := range strings.Split(u.Path, "/") {
		if seg == ".." {
			// Refused even when it would stay inside Root: no honest
			// producer writes "..", and refusing is simpler to reason about.
			return deny(`".." in path`)
		}
	}
	return filepath.Clean(filepath.FromSlash(u.Path)), nil
}

// resolve checks that p lies below Root, first lexically and then after
// resolving symlinks on both sides, and returns the real root and the real
// path relative to it.
func (f FileFetcher) resolve(p string) (root, rel string, err error) {
	if f.Root == "" {
		return "", "", fmt.Errorf("no root configured: %w", ErrForbidden)
	}
	rootAbs, err := filepath.Abs(f.Root)
	if err != nil {
		return "", "", err
	}
	rootReal, err := filepath.EvalSymlinks(rootAbs)
	if err != nil {
		return "", "", fmt.Errorf("root: %w", err)
	}
	// Either spelling of the root is fine in a URI (e.g. /tmp vs /private/tmp).
	if !within(rootAbs, p) && !within(rootReal, p) {
		return "", "", fmt.Errorf("outside root %s: %w", f.Root, ErrForbidden)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		return "", "", err
	}
	if !within(rootReal, real) {
		return "", "", fmt.Errorf("symlink leads outside root %s: %w", f.Root, ErrForbidden)
	}
	rel, err = filepath.Rel(rootReal, real)
	return rootReal, rel, err
}

// within reports whether p is dir or below it; both must be clean and absolute.
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator))
}

// read opens rel through an os.Root, which refuses to leave root even if a
// symlink is swapped in after resolve checked the path, and reads at most
// MaxBytes.
func (f FileFetcher) read(root, rel string) ([]byte, error) {
	limit := f.MaxBytes
	if limit <= 0 {
		limit = DefaultLimits().MaxBytes
	}
	r, err := os.OpenRoot(root)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	file, err := r.Open(rel)
	if err != nil {
		// os.Root's escape error is unexported; its text is stable API-wise
		// ("path escapes from parent") and only reachable if a symlink changed
		// since resolve.
		if strings.Contains(err.Error(), "path escapes from parent") {
			return nil, fmt.Errorf("%w: %w", ErrForbidden, err)
		}
		return nil, err
	}
	defer file.Close()
	st, err := file.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		// Directories, FIFOs and devices would fail oddly or block a worker.
		return nil, fmt.Errorf("%s is not a regular file: %w", rel, ErrForbidden)
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%d bytes exceeds limit %d: %w", st.Size(), limit, ErrTooLarge)
	}
	// The file may grow after Stat; the limited reader keeps the bound.
	data, err := io.ReadAll(io.LimitReader(file, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("more than %d bytes: %w", limit, ErrTooLarge)
	}
	return data, nil
}
