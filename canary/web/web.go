// Package web is the small page ML teams use to follow rollouts and decide
// rollbacks: the serving route, the current rollout with its analysis,
// pending rollback requests with Approve/Reject, and the audit trail.
//
// Login takes an API token once (POST body, never a URL) and keeps a
// server-side session behind an HttpOnly, SameSite=Strict cookie. Every form
// carries the session's CSRF token and every POST must come from this
// origin; the role checks are the API's (internal/auth).
package web

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/lookout-dev/lookout/canary/rollout"
	"github.com/lookout-dev/lookout/internal/auth"
)

// CookieName is the session cookie.
const CookieName = "lookout_session"

// sessionTTL bounds a login.
const sessionTTL = 8 * time.Hour

// maxSessions bounds the session table: logins beyond it evict the oldest.
const maxSessions = 10000

type session struct {
	p       auth.Principal
	csrf    string
	expires time.Time
}

// Handler serves the page. Create it with New.
type Handler struct {
	c    *rollout.Controller
	auth *auth.Authenticator
	log  *slog.Logger
	mux  *http.ServeMux

	mu       sync.Mutex
	sessions map[string]*session
}

// New returns the web handler; mount it at "/".
func New(c *rollout.Controller, a *auth.Authenticator, log *slog.Logger) *Handler {
	h := &Handler{c: c, auth: a, log: log, mux: http.NewServeMux(), sessions: map[string]*session{}}
	h.mux.HandleFunc("GET /{$}", h.index)
	h.mux.HandleFunc("POST /login", h.login)
	h.mux.HandleFunc("POST /logout", h.logout)
	h.mux.HandleFunc("POST /ui/rollbacks", h.form(auth.RoleOperator, h.requestRollback))
	h.mux.HandleFunc("POST /ui/rollbacks/{id}/{decision}", h.form(auth.RoleApprover, h.decide))
	h.mux.HandleFunc("POST /ui/rollouts/{id}/{action}", h.form(auth.RoleOperator, h.act))
	return h
}

// ServeHTTP sets the security headers, refuses cross-origin POSTs and serves the page.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'")
	hd.Set("X-Content-Type-Options", "nosniff")
	// same-origin, not no-referrer: with no-referrer browsers send "Origin: null"
	// on form POSTs, and the origin check below needs the real one.
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Cache-Control", "no-store")
	if r.Method == http.MethodPost && !sameOrigin(r) {
		http.Error(w, "cross-origin form refused", http.StatusForbidden)
		return
	}
	h.mux.ServeHTTP(w, r)
}

// sameOrigin refuses POSTs whose Origin (or, without it, Referer) names
// another host. Browsers send Origin on form POSTs.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		o = r.Header.Get("Referer")
	}
	if o == "" || o == "null" {
		return o == ""
	}
	u, err := url.Parse(o)
	return err == nil && u.Host == r.Host
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (h *Handler) session(r *http.Request) (*session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return nil, false
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	s, ok := h.sessions[c.Value]
	if !ok || time.Now().After(s.expires) {
		delete(h.sessions, c.Value)
		return nil, false
	}
	return s, true
}

func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	p, ok := h.auth.Authenticate(r.PostFormValue("token"))
	if !ok {
		h.log.Warn("web login refused", "remote", r.RemoteAddr)
		h.render(w, r, nil, "That token is not valid.")
		return
	}
	id := randomHex(32)
	h.mu.Lock()
	if len(h.sessions) >= maxSessions {
		h.evictLocked()
	}
	h.sessions[id] = &session{p: p, csrf: randomHex(32), expires: time.Now().Add(sessionTTL)}
	h.mu.Unlock()
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: id, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil, MaxAge: int(sessionTTL.Seconds())})
	h.log.Info("web login", "principal", p.Name)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) evictLocked() {
	var oldest string
	var at time.Time
	for id, s := range h.sessions {
		if oldest == "" || s.expires.Before(at) {
			oldest, at = id, s.expires
		}
	}
	delete(h.sessions, oldest)
}

func (h *Handler) logout(w http.ResponseWriter, r *http.Request) {
	if s, ok := h.session(r); ok && h.csrfOK(r, s) {
		c, _ := r.Cookie(CookieName)
		h.mu.Lock()
		delete(h.sessions, c.Value)
		h.mu.Unlock()
	}
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/", HttpOnly: true,
		SameSite: http.SameSiteStrictMode, MaxAge: -1})
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

func (h *Handler) csrfOK(r *http.Request, s *session) bool {
	return subtle.ConstantTimeCompare([]byte(r.PostFormValue("csrf")), []byte(s.csrf)) == 1
}

// form wraps a state-changing form handler: a live session, a matching CSRF
// token and the role are all required.
func (h *Handler) form(role auth.Role, next func(context.Context, auth.Principal, *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		s, ok := h.session(r)
		switch {
		case !ok:
			http.Redirect(w, r, "/", http.StatusSeeOther)
			return
		case !h.csrfOK(r, s):
			http.Error(w, "stale or missing form token: reload the page", http.StatusForbidden)
			return
		case !s.p.Has(role):
			h.render(w, r, s, "You need the "+string(role)+" role for that.")
			return
		}
		if err := next(r.Context(), s.p, r); err != nil {
			h.render(w, r, s, err.Error())
			return
		}
		http.Redirect(w, r, "/", http.StatusSeeOther)
	}
}

func (h *Handler) requestRollback(ctx context.Context, p auth.Principal, r *http.Request) error {
	_, err := h.c.RequestRollback(ctx, p.Name, r.PostFormValue("reason"))
	return err
}

func (h *Handler) decide(ctx context.Context, p auth.Principal, r *http.Request) error {
	d := r.PathValue("decision")
	if d != "approve" && d != "reject" {
		return rollout.ErrInvalid
	}
	return h.c.Decide(ctx, p, r.PathValue("id"), d == "approve", r.PostFormValue("note"))
}

func (h *Handler) act(ctx context.Context, p auth.Principal, r *http.Request) error {
	return h.c.Act(ctx, p.Name, r.PathValue("action"), r.PathValue("id"), r.PostFormValue("reason"))
}

func (h *Handler) index(w http.ResponseWriter, r *http.Request) {
	s, _ := h.session(r)
	h.render(w, r, s, "")
}

type pageData struct {
	User    string
	Roles   []auth.Role
	CSRF    string
	Message string
	State   rollout.State
	Route   any
	Audit   []rollout.Entry
	Pending []rollout.Rollback
}

func (h *Handler) render(w http.ResponseWriter, r *http.Request, s *session, msg string) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	d := pageData{Message: msg}
	if s != nil && (s.p.Has(auth.RoleViewer) || s.p.Has(auth.RoleApprover) || s.p.Has(auth.RoleOperator)) {
		d.User, d.Roles, d.CSRF = s.p.Name, s.p.Roles, s.csrf
		d.State = h.c.State()
		d.Route = h.c.Route()
		for _, rb := range d.State.Rollbacks {
			if rb.Status == rollout.RollbackPending {
				d.Pending = append(d.Pending, rb)
			}
		}
		var err error
		if d.Audit, err = h.c.AuditTrail(r.Context(), 50); err != nil {
			d.Message += " Audit trail unavailable: " + err.Error()
		}
	} else if s != nil {
		d.Message = "Your token holds none of the viewer, operator or approver roles."
	}
	if err := page.Execute(w, d); err != nil {
		h.log.Warn("render page", "err", err)
	}
}
