package embed

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"

	"golang.org/x/image/webp"
)

// Errors that classify why an image could not be used. Wrapped errors keep
// the detail; test with errors.Is, or use Reason for a metric label.
var (
	// ErrTooLarge: the encoded bytes or the declared dimensions exceed Limits.
	ErrTooLarge = errors.New("image too large")
	// ErrUnsupportedFormat: the bytes are not JPEG, PNG or WebP.
	ErrUnsupportedFormat = errors.New("unsupported image format")
	// ErrCorrupt: the bytes claim a supported format but do not decode.
	ErrCorrupt = errors.New("corrupt image")
)

// Limits bounds what Decode accepts. Zero fields take the DefaultLimits value,
// so the zero Limits is safe.
type Limits struct {
	// MaxBytes bounds the encoded size.
	MaxBytes int64
	// MaxPixels bounds width*height, i.e. the decoded memory (4 bytes/pixel
	// for RGBA, 1.5 for 4:2:0 YCbCr).
	MaxPixels int
	// MaxSide bounds the longer edge.
	MaxSide int
}

// DefaultLimits admits any ordinary camera frame (up to ~50 MP, 16k a side,
// 32 MiB encoded) while keeping one decode below ~200 MB of memory.
func DefaultLimits() Limits {
	return Limits{MaxBytes: 32 << 20, MaxPixels: 50_000_000, MaxSide: 16384}
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxBytes <= 0 {
		l.MaxBytes = d.MaxBytes
	}
	if l.MaxPixels <= 0 {
		l.MaxPixels = d.MaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = d.MaxSide
	}
	return l
}

// codec is one accepted format. Decoders are called directly rather than via
// image.Decode so that formats registered elsewhere in the process (GIF,
// BMP, ...) are not silently accepted.
type codec struct {
	name   string
	magic  func([]byte) bool
	config func(io.Reader) (image.Config, error)
	decode func(io.Reader) (image.Image, error)
}

var codecs = []codec{
	{"jpeg", func(b []byte) bool { return bytes.HasPrefix(b, []byte{0xff, 0xd8, 0xff}) }, jpeg.DecodeConfig, jpeg.Decode},
	{"png", func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }, png.DecodeConfig, png.Decode},
	{"webp", func(b []byte) bool {
		return len(b) >= 12 && string(b[:4]) == "RIFF" && string(b[8:12]) == "WEBP"
	}, webp.DecodeConfig, webp.Decode},
}

// Decode decodes a JPEG, PNG or WebP image. It reads the header first and
// refuses images whose declared dimensions exceed lim before allocating
// anything for the pixels, so a small file claiming 100000x100000 pixels (a
// decompression bomb) costs nothing. A JPEG's EXIF orientation is applied,
// so the result is upright as PIL's exif_transpose would make it; CMYK JPEGs
// decode to *image.CMYK, which Preprocess converts as PIL does. Errors wrap ErrTooLarge,
// ErrUnsupportedFormat or ErrCorrupt.
func Decode(data []byte, lim Limits) (image.Image, error) {
	lim = lim.withDefaults()
	if int64(len(data)) > lim.MaxBytes {
		return nil, fmt.Errorf("decode: %d bytes exceeds limit %d: %w", len(data), lim.MaxBytes, ErrTooLarge)
	}
	if len(data) == 0 {
		return nil, fmt.Errorf("decode: empty input: %w", ErrCorrupt)
	}
	c, ok := sniff(data)
	if !ok {
		return nil, fmt.Errorf("decode: unrecognised header % x: %w", data[:min(len(data), 4)], ErrUnsupportedFormat)
	}
	cfg, err := safely(func() (image.Config, error) { return c.config(bytes.NewReader(data)) })
	if err != nil {
		return nil, fmt.Errorf("decode %s header: %w: %w", c.name, ErrCorrupt, err)
	}
	if err := checkDims(cfg.Width, cfg.Height, lim); err != nil {
		return nil, fmt.Errorf("decode %s: %w", c.name, err)
	}
	img, err := safely(func() (image.Image, error) { return c.decode(bytes.NewReader(data)) })
	if err != nil {
		return nil, fmt.Errorf("decode %s: %w: %w", c.name, ErrCorrupt, err)
	}
	if b := img.Bounds(); b.Dx() != cfg.Width || b.Dy() != cfg.Height {
		// The limits were checked on the header; a decoder disagreeing with
		// its own header must not slip past them.
		return nil, fmt.Errorf("decode %s: header says %dx%d, pixels are %dx%d: %w",
			c.name, cfg.Width, cfg.Height, b.Dx(), b.Dy(), ErrCorrupt)
	}
	if c.name == "jpeg" {
		img = orient(img, jpegOrientation(data))
	}
	return img, nil
}

func sniff(data []byte) (codec, bool) {
	for _, c := range codecs {
		if c.magic(data) {
			return c, true
		}
	}
	return codec{}, false
}

func checkDims(w, h int, lim Limits) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("dimensions %dx%d: %w", w, h, ErrCorrupt)
	}
	if w > lim.MaxSide || h > lim.MaxSide {
		return fmt.Errorf("dimensions %dx%d exceed max side %d: %w", w, h, lim.MaxSide, ErrTooLarge)
	}
	if int64(w)*int64(h) > int64(lim.MaxPixels) {
		return fmt.Errorf("dimensions %dx%d exceed %d pixels: %w", w, h, lim.MaxPixels, ErrTooLarge)
	}
	return nil
}

// safely turns a decoder panic into an error: a hostile file must cost one
// counted failure, never the process.
func safely[T any](f func() (T, error)) (v T, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("decoder panic: %v", r)
		}
	}()
	return f()
}

// Reason maps an error from Decode, FileFetcher.Fetch or Model.Embed to a
// short, bounded label for metrics ("too_large", "unsupported_format",
// "corrupt", "forbidden", "not_found", "canceled", "fetch_failed", "other";
// "" for nil).
func Reason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrTooLarge):
		return "too_large"
	case errors.Is(err, ErrUnsupportedFormat):
		return "unsupported_format"
	case errors.Is(err, ErrCorrupt):
		return "corrupt"
	case errors.Is(err, ErrForbidden):
		return "forbidden"
	case errors.Is(err, fs.ErrNotExist):
		return "not_found"
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return "canceled"
	case errors.Is(err, ErrFetch):
		return "fetch_failed"
	}
	return "other"
}
