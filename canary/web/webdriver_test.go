package web

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"testing"
	"time"
)

// webDriver is a minimal W3C WebDriver client for chromedriver: just what
// the end-to-end test needs, over plain HTTP, so no extra Go module.
type webDriver struct {
	t       *testing.T
	base    string
	session string
}

const elementKey = "element-6066-11e4-a52e-4f735466cecf"

// startBrowser runs chromedriver with headless Debian chromium.
func startBrowser(t *testing.T) *webDriver {
	t.Helper()
	driverPath, err := exec.LookPath("chromedriver")
	if err != nil {
		t.Fatal("chromedriver not found: run `make setup` (Debian chromium-driver)")
	}
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatal("chromium not found: run `make setup` (Debian chromium)")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(driverPath, fmt.Sprintf("--port=%d", port))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	wd := &webDriver{t: t, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(wd.base + "/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromium,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
				"--disable-dev-shm-usage", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	var created struct {
		SessionID string `json:"sessionId"`
	}
	wd.do("POST", "/session", caps, &created)
	wd.session = created.SessionID
	t.Cleanup(func() { wd.do("DELETE", "/session/"+wd.session, nil, nil) })
	return wd
}

// do sends one command; a WebDriver error fails the test.
func (wd *webDriver) do(method, path string, body, out any) {
	wd.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, wd.base+path, rd)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		wd.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		wd.t.Fatalf("webdriver %s %s: %s %s", method, path, resp.Status, b)
	}
	if out == nil {
		return
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(b, &env); err != nil {
		wd.t.Fatalf("webdriver answer: %v", err)
	}
	// New Session answers {"value": {"sessionId": …}}.
	if err := json.Unmarshal(env.Value, out); err != nil {
		wd.t.Fatalf("webdriver value %s: %v", env.Value, err)
	}
}

func (wd *webDriver) s(path string) string { return "/session/" + wd.session + path }

func (wd *webDriver) open(url string) {
	wd.do("POST", wd.s("/url"), map[string]string{"url": url}, nil)
}

func (wd *webDriver) find(css string) string {
	wd.t.Helper()
	var el map[string]string
	wd.do("POST", wd.s("/element"), map[string]string{"using": "css selector", "value": css}, &el)
	return el[elementKey]
}

// has reports whether an element matching css exists.
func (wd *webDriver) has(css string) bool {
	var els []map[string]string
	wd.do("POST", wd.s("/elements"), map[string]string{"using": "css selector", "value": css}, &els)
	return len(els) > 0
}

func (wd *webDriver) text(css string) string {
	var s string
	wd.do("GET", wd.s("/element/"+wd.find(css)+"/text"), nil, &s)
	return s
}

func (wd *webDriver) typeInto(css, text string) {
	wd.do("POST", wd.s("/element/"+wd.find(css)+"/value"), map[string]string{"text": text}, nil)
}

func (wd *webDriver) click(css string) {
	wd.do("POST", wd.s("/element/"+wd.find(css)+"/click"), map[string]any{}, nil)
}

func (wd *webDriver) url() string {
	var s string
	wd.do("GET", wd.s("/url"), nil, &s)
	return s
}

func (wd *webDriver) script(js string) any {
	var v any
	wd.do("POST", wd.s("/execute/sync"), map[string]any{"script": js, "args": []any{}}, &v)
	return v
}

type cookie struct {
	Name     string `json:"name"`
	HTTPOnly bool   `json:"httpOnly"`
	SameSite string `json:"sameSite"`
}

func (wd *webDriver) cookies() []cookie {
	var cs []cookie
	wd.do("GET", wd.s("/cookie"), nil, &cs)
	return cs
}

func (wd *webDriver) clearCookies() { wd.do("DELETE", wd.s("/cookie"), nil, nil) }

func (wd *webDriver) source() string {
	var s string
	wd.do("GET", wd.s("/source"), nil, &s)
	return s
}

// wait polls until an element matching css exists: a click that submits a
// form may return before the next page has loaded.
func (wd *webDriver) wait(css string) {
	wd.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !wd.has(css) {
		if time.Now().After(deadline) {
			wd.t.Fatalf("no %s on the page after 15s:\n%s", css, wd.source())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
