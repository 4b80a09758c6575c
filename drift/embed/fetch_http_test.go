package embed

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

// imageServer serves a small PNG at /img.png, plus hostile answers: a body
// larger than any limit (with and without Content-Length), an HTML page, a
// 404, a slow answer and redirects.
func imageServer(t *testing.T, png []byte) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/img.png", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(png)
	})
	mux.HandleFunc("/untyped", func(w http.ResponseWriter, _ *http.Request) {
		w.Header()["Content-Type"] = nil // no sniffing: no header at all
		w.Write(png)
	})
	mux.HandleFunc("/large", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		w.Write(bytes.Repeat([]byte{0xff}, 2<<20))
	})
	mux.HandleFunc("/large-chunked", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "image/jpeg")
		for range 64 {
			w.Write(bytes.Repeat([]byte{0xff}, 32<<10))
			w.(http.Flusher).Flush() // no Content-Length: the reader must count
		}
	})
	mux.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write([]byte("<html>login</html>"))
	})
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		<-r.Context().Done()
	})
	mux.HandleFunc("/same-host-redirect", func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, "/img.png", http.StatusFound)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func hostOf(t *testing.T, raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

func TestHTTPFetcherAllowedHost(t *testing.T) {
	png := encodePNG(t, scene(32, 24, 1))
	srv := imageServer(t, png)
	f := NewHTTPFetcher(HTTPConfig{AllowHosts: []string{hostOf(t, srv.URL)}, AllowPrivate: true, MaxBytes: 1 << 20, Timeout: 2 * time.Second})
	ctx := context.Background()
	for _, path := range []string{"/img.png", "/untyped", "/same-host-redirect"} {
		got, err := f.Fetch(ctx, srv.URL+path)
		if err != nil || !bytes.Equal(got, png) {
			t.Errorf("%s: %d bytes, %v", path, len(got), err)
		}
	}
	for path, reason := range map[string]string{
		"/large":         "too_large",
		"/large-chunked": "too_large",
		"/page":          "unsupported_format",
		"/missing":       "not_found",
	} {
		if _, err := f.Fetch(ctx, srv.URL+path); Reason(err) != reason {
			t.Errorf("%s: %v (reason %q), want %s", path, err, Reason(err), reason)
		}
	}
	// Timeout: the slow handler never answers.
	slow := NewHTTPFetcher(HTTPConfig{AllowHosts: []string{hostOf(t, srv.URL)}, AllowPrivate: true, Timeout: 300 * time.Millisecond})
	if _, err := slow.Fetch(ctx, srv.URL+"/slow"); !errors.Is(err, ErrFetch) {
		t.Errorf("slow server: %v, want ErrFetch (timeout)", err)
	}
}

// TestHTTPFetcherRefusesSSRF checks the ways an event could point the
// fetcher into the network it runs in.
func TestHTTPFetcherRefusesSSRF(t *testing.T) {
	png := encodePNG(t, scene(32, 24, 1))
	srv := imageServer(t, png)
	other := imageServer(t, png)
	host := hostOf(t, srv.URL)
	port := strings.TrimPrefix(host, "127.0.0.1:")
	redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL+"/img.png", http.StatusFound)
	}))
	t.Cleanup(redirector.Close)
	ctx := context.Background()

	// Private addresses refused, although the host is allow-listed: checked
	// on the dialled IP, so the name "localhost" does not get through either.
	strict := NewHTTPFetcher(HTTPConfig{AllowHosts: []string{host, "localhost", "169.254.169.254", "[::1]:" + port}})
	for _, uri := range []string{
		srv.URL + "/img.png",
		"http://localhost:" + port + "/img.png",
		"http://169.254.169.254/latest/meta-data/",
		"http://[::1]:" + port + "/img.png",
	} {
		if _, err := strict.Fetch(ctx, uri); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", uri, err)
		}
	}

	open := NewHTTPFetcher(HTTPConfig{AllowHosts: []string{host, hostOf(t, redirector.URL)}, AllowPrivate: true})
	for _, uri := range []string{
		other.URL + "/img.png",                      // host not allow-listed
		redirector.URL + "/x",                       // redirect to another host
		"ftp://" + host + "/img.png",                // scheme
		"http://user:pw@" + host + "/img.png",       // credentials
		"gopher://" + host + "/",                    // scheme
		"http:///img.png",                           // no host
		"http://" + strings.ToUpper("evil.example"), // not listed
	} {
		if _, err := open.Fetch(ctx, uri); !errors.Is(err, ErrForbidden) {
			t.Errorf("%s: %v, want ErrForbidden", uri, err)
		}
	}
}

func TestInternalAddresses(t *testing.T) {
	for s, want := range map[string]bool{
		"127.0.0.1": true, "10.1.2.3": true, "172.16.0.1": true, "192.168.1.1": true, "169.254.169.254": true,
		"100.64.0.1": true, "0.0.0.0": true, "::1": true, "fe80::1": true, "fd00::1": true, "::ffff:127.0.0.1": true,
		"8.8.8.8": false, "93.184.216.34": false, "2606:4700::1111": false,
	} {
		if got := internal(netip.MustParseAddr(s).Unmap()); got != want {
			t.Errorf("internal(%s) = %v, want %v", s, got, want)
		}
	}
}

func TestFetchersRouteBySchemeAndRefuseOthers(t *testing.T) {
	root, _ := fetchFixture(t)
	png := encodePNG(t, scene(16, 16, 2))
	srv := imageServer(t, png)
	f := Fetchers{File: &FileFetcher{Root: root}, HTTP: NewHTTPFetcher(HTTPConfig{AllowHosts: []string{hostOf(t, srv.URL)}, AllowPrivate: true})}
	ctx := context.Background()
	if got, err := f.Fetch(ctx, fileURI(root+"/a.png")); err != nil || string(got) != "aaaa" {
		t.Errorf("file: %q %v", got, err)
	}
	if got, err := f.Fetch(ctx, srv.URL+"/img.png"); err != nil || !bytes.Equal(got, png) {
		t.Errorf("http: %d bytes %v", len(got), err)
	}
	if _, err := f.Fetch(ctx, "data:image/png;base64,AAAA"); !errors.Is(err, ErrForbidden) {
		t.Errorf("data: %v", err)
	}
	fileOnly := Fetchers{File: &FileFetcher{Root: root}}
	if _, err := fileOnly.Fetch(ctx, srv.URL+"/img.png"); !errors.Is(err, ErrForbidden) {
		t.Errorf("http without allow list: %v", err)
	}
	if _, err := fileOnly.Fetch(ctx, fileURI(root+"/missing.png")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}
