// Package auth authenticates lookout's HTTP APIs with bearer tokens and
// authorises them by role. Tokens are configured as SHA-256 hashes, so the
// configuration never holds a usable secret, and compared in constant time.
// Every refusal is logged (without the token) and counted.
package auth

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
)

// Role is what a principal may do. Roles are ordered only where stated:
// admin implies every other role.
type Role string

// Roles known to lookout.
const (
	RoleViewer    Role = "viewer"
	RoleOperator  Role = "operator"
	RoleApprover  Role = "approver"
	RoleAnnotator Role = "annotator"
	RoleAdmin     Role = "admin"
)

// KnownRoles lists every valid role.
var KnownRoles = []Role{RoleViewer, RoleOperator, RoleApprover, RoleAnnotator, RoleAdmin}

// Token configures one API token.
type Token struct {
	// Name identifies the principal in logs and the audit trail.
	Name string `yaml:"name"`
	// SHA256 is the hex SHA-256 of the token; `lookout token hash` prints it.
	SHA256 string `yaml:"sha256"`
	Roles  []Role `yaml:"roles"`
}

// Principal is an authenticated caller.
type Principal struct {
	Name  string
	Roles []Role
}

// Has reports whether p holds role r (admins hold every role).
func (p Principal) Has(r Role) bool {
	return slices.Contains(p.Roles, r) || slices.Contains(p.Roles, RoleAdmin)
}

// Hash returns the hex SHA-256 of a token, the form kept in configuration.
func Hash(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Validate checks token configuration.
func Validate(tokens []Token) error {
	seen := map[string]bool{}
	for i, t := range tokens {
		if t.Name == "" || seen[t.Name] {
			return fmt.Errorf("auth.tokens[%d]: name must be set and unique", i)
		}
		seen[t.Name] = true
		if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != sha256.Size {
			return fmt.Errorf("auth.tokens[%d] (%s): sha256 must be 64 hex characters", i, t.Name)
		}
		if len(t.Roles) == 0 {
			return fmt.Errorf("auth.tokens[%d] (%s): at least one role is required", i, t.Name)
		}
		for _, r := range t.Roles {
			if !slices.Contains(KnownRoles, r) {
				return fmt.Errorf("auth.tokens[%d] (%s): unknown role %q", i, t.Name, r)
			}
		}
	}
	return nil
}

// Authenticator checks bearer tokens against the configured hashes.
type Authenticator struct {
	tokens  []Token
	hashes  [][]byte
	log     *slog.Logger
	refused *prometheus.CounterVec
}

// New returns an authenticator for tokens (validated with Validate) that
// registers its refusal counter with reg (nil for none).
func New(tokens []Token, log *slog.Logger, reg prometheus.Registerer) *Authenticator {
	a := &Authenticator{tokens: tokens, log: log}
	for _, t := range tokens {
		b, _ := hex.DecodeString(t.SHA256)
		a.hashes = append(a.hashes, b)
	}
	a.refused = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "lookout_auth_refused_total",
		Help: "HTTP API calls refused, by reason (no_token, bad_token, forbidden).",
	}, []string{"reason"})
	if reg != nil {
		reg.MustRegister(a.refused)
	}
	return a
}

// Authenticate returns the principal holding token. Every configured hash is
// compared, in constant time, so timing does not reveal which one matched.
func (a *Authenticator) Authenticate(token string) (Principal, bool) {
	if token == "" {
		return Principal{}, false
	}
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i, h := range a.hashes {
		if subtle.ConstantTimeCompare(sum[:], h) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	t := a.tokens[found]
	return Principal{Name: t.Name, Roles: slices.Clone(t.Roles)}, true
}

type ctxKey struct{}

// FromContext returns the principal Require stored in ctx.
func FromContext(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(Principal)
	return p, ok
}

// WithPrincipal returns ctx carrying p (for handlers and tests).
func WithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// BearerToken extracts the token of an "Authorization: Bearer …" header.
func BearerToken(r *http.Request) string {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:])
	}
	return ""
}

// Require wraps next so only callers holding role reach it: no or unknown
// token → 401, known token without the role → 403. Refusals are logged with
// the path and the principal's name, never the token.
func (a *Authenticator) Require(role Role, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token := BearerToken(r)
		p, ok := a.Authenticate(token)
		switch {
		case !ok:
			reason := "bad_token"
			if token == "" {
				reason = "no_token"
			}
			a.refuse(w, r, reason, "", http.StatusUnauthorized)
		case !p.Has(role):
			a.refuse(w, r, "forbidden", p.Name, http.StatusForbidden)
		default:
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		}
	})
}

func (a *Authenticator) refuse(w http.ResponseWriter, r *http.Request, reason, who string, code int) {
	a.refused.WithLabelValues(reason).Inc()
	a.log.Warn("api call refused", "reason", reason, "principal", who, "method", r.Method, "path", r.URL.Path,
		"remote", r.RemoteAddr)
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Bearer realm="lookout"`)
	}
	http.Error(w, http.StatusText(code), code)
}
