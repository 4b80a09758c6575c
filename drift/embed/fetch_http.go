package embed

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrFetch: the image server could not be reached or answered with an error.
var ErrFetch = errors.New("image fetch failed")

// HTTPFetcher fetches images over http(s) without becoming a way into the
// network it runs in (SSRF): only allow-listed hosts, never a redirect to
// another host, and, unless AllowPrivate, never a loopback, private,
// link-local or otherwise internal address. The address check runs on the IP
// actually dialled, after DNS resolution, so a name that resolves (or
// re-resolves, "DNS rebinding") to 169.254.169.254 is refused too.
// Environment proxies are ignored: a proxy would dial on our behalf and
// bypass the check.
type HTTPFetcher struct {
	allow        map[string]bool // lower-case "host" or "host:port"
	allowPrivate bool
	maxBytes     int64
	client       *http.Client
}

// HTTPConfig configures NewHTTPFetcher.
type HTTPConfig struct {
	// AllowHosts are the hosts image URIs may name, as "host" (any port) or
	// "host:port". Empty refuses every URI.
	AllowHosts []string
	// AllowPrivate permits loopback, private (RFC 1918, ULA), CGNAT and
	// link-local addresses, e.g. for an image store on the same network.
	AllowPrivate bool
	// Timeout bounds one fetch, connection to last byte; 0 means 10 s.
	Timeout time.Duration
	// MaxBytes bounds the body; 0 means DefaultLimits().MaxBytes.
	MaxBytes int64
}

// NewHTTPFetcher returns a fetcher for cfg.
func NewHTTPFetcher(cfg HTTPConfig) *HTTPFetcher {
	f := &HTTPFetcher{allow: map[string]bool{}, allowPrivate: cfg.AllowPrivate, maxBytes: cfg.MaxBytes}
	for _, h := range cfg.AllowHosts {
		f.allow[strings.ToLower(h)] = true
	}
	if f.maxBytes <= 0 {
		f.maxBytes = DefaultLimits().MaxBytes
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	dialer := &net.Dialer{Timeout: min(timeout, 5*time.Second), Control: f.checkDial}
	f.client = &http.Client{
		Timeout: timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			TLSHandshakeTimeout:   min(timeout, 5*time.Second),
			ResponseHeaderTimeout: timeout,
			MaxIdleConnsPerHost:   8,
			IdleConnTimeout:       90 * time.Second,
			ForceAttemptHTTP2:     true,
		},
		CheckRedirect: f.checkRedirect,
	}
	return f
}

// Fetch returns the body of uri. Errors wrap ErrForbidden (not allowed),
// ErrTooLarge, ErrUnsupportedFormat (not an image content type),
// fs.ErrNotExist (404/410) or ErrFetch.
func (f *HTTPFetcher) Fetch(ctx context.Context, uri string) ([]byte, error) {
	u, err := url.Parse(uri)
	if err != nil {
		return nil, fmt.Errorf("fetch: %w: %w", ErrForbidden, err)
	}
	if err := f.checkURL(u); err != nil {
		return nil, fmt.Errorf("fetch %s: %w", redact(u), err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w: %w", redact(u), ErrForbidden, err)
	}
	req.Header.Set("Accept", "image/jpeg, image/png, image/webp")
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", redact(u), classifyHTTPError(err))
	}
	defer resp.Body.Close()
	data, err := f.read(resp)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", redact(u), err)
	}
	return data, nil
}

func (f *HTTPFetcher) read(resp *http.Response) ([]byte, error) {
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return nil, fmt.Errorf("status %s: %w", resp.Status, fs.ErrNotExist)
	case resp.StatusCode != http.StatusOK:
		return nil, fmt.Errorf("status %s: %w", resp.Status, ErrFetch)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || !(strings.HasPrefix(mt, "image/") || mt == "application/octet-stream") {
			return nil, fmt.Errorf("content type %q is not an image: %w", ct, ErrUnsupportedFormat)
		}
	}
	if resp.ContentLength > f.maxBytes {
		return nil, fmt.Errorf("%d bytes exceeds limit %d: %w", resp.ContentLength, f.maxBytes, ErrTooLarge)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, f.maxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("read body: %w", classifyHTTPError(err))
	}
	if int64(len(data)) > f.maxBytes {
		return nil, fmt.Errorf("more than %d bytes: %w", f.maxBytes, ErrTooLarge)
	}
	return data, nil
}

// checkURL admits http(s) URLs to allow-listed hosts, without credentials.
func (f *HTTPFetcher) checkURL(u *url.URL) error {
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("scheme %q is not http(s): %w", u.Scheme, ErrForbidden)
	case u.User != nil:
		return fmt.Errorf("credentials in URL: %w", ErrForbidden)
	case u.Host == "":
		return fmt.Errorf("no host: %w", ErrForbidden)
	}
	host := strings.ToLower(u.Hostname())
	if !f.allow[host] && !f.allow[strings.ToLower(u.Host)] {
		return fmt.Errorf("host %q is not in the allow list: %w", u.Host, ErrForbidden)
	}
	return nil
}

// checkRedirect follows at most 3 redirects, each to the original host and
// an allowed URL; anything else would let an allowed host point us at an
// internal one.
func (f *HTTPFetcher) checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 3 {
		return fmt.Errorf("more than 3 redirects: %w", ErrForbidden)
	}
	if !strings.EqualFold(req.URL.Host, via[0].URL.Host) {
		return fmt.Errorf("redirect to another host %q: %w", req.URL.Host, ErrForbidden)
	}
	return f.checkURL(req.URL)
}

// checkDial runs on the resolved address right before connecting.
func (f *HTTPFetcher) checkDial(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dial %s: %w", address, ErrForbidden)
	}
	if ip := ap.Addr().Unmap(); !f.allowPrivate && internal(ip) {
		return fmt.Errorf("address %s is internal (loopback, private or link-local): %w", ip, ErrForbidden)
	}
	return nil
}

var internalPrefixes = sync.OnceValue(func() []netip.Prefix {
	var ps []netip.Prefix
	for _, s := range []string{
		"0.0.0.0/8",     // "this network"
		"100.64.0.0/10", // carrier-grade NAT
		"192.0.0.0/24",  // IETF protocol assignments
		"198.18.0.0/15", // benchmarking
		"240.0.0.0/4",   // reserved, includes broadcast
		"64:ff9b::/96",  // NAT64: would reach IPv4 internals
		"2002::/16",     // 6to4, likewise
	} {
		ps = append(ps, netip.MustParsePrefix(s))
	}
	return ps
})

// internal reports addresses an image fetch must not reach by default.
func internal(ip netip.Addr) bool {
	if ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsInterfaceLocalMulticast() || ip.IsMulticast() || ip.IsUnspecified() {
		return true
	}
	for _, p := range internalPrefixes() {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// classifyHTTPError keeps ErrForbidden from the dial or redirect checks
// visible through url.Error, and marks everything else as ErrFetch.
func classifyHTTPError(err error) error {
	if errors.Is(err, ErrForbidden) || errors.Is(err, context.Canceled) {
		return err
	}
	return fmt.Errorf("%w: %w", ErrFetch, err)
}

// redact drops the query, which may carry signed-URL secrets, from logs.
func redact(u *url.URL) string {
	c := *u
	c.RawQuery, c.Fragment, c.User = "", "", nil
	return c.String()
}

// Fetchers routes a URI to the fetcher of its scheme: file:// to File,
// http:// and https:// to HTTP. A nil fetcher refuses its schemes.
type Fetchers struct {
	File *FileFetcher
	HTTP *HTTPFetcher
}

// Fetch implements Fetcher.
func (f Fetchers) Fetch(ctx context.Context, uri string) ([]byte, error) {
	scheme, _, _ := strings.Cut(uri, ":")
	switch strings.ToLower(scheme) {
	case "file":
		if f.File != nil {
			return f.File.Fetch(ctx, uri)
		}
	case "http", "https":
		if f.HTTP != nil {
			return f.HTTP.Fetch(ctx, uri)
		}
	}
	return nil, fmt.Errorf("fetch: scheme %q not enabled: %w", scheme, ErrForbidden)
}
