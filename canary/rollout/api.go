package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/lookout-dev/lookout/canary/router"
	"github.com/lookout-dev/lookout/internal/auth"
)

// API serves the controller over HTTP (JSON), each route behind its role:
// viewers read, operators start/pause/resume/promote/abort and request
// rollbacks, approvers approve or reject them.
type API struct {
	C    *Controller
	Auth *auth.Authenticator
}

// Register adds the API's routes under /api/v1/ to mux.
func (a API) Register(mux *http.ServeMux) {
	mux.Handle("GET /api/v1/state", a.Auth.Require(auth.RoleViewer, http.HandlerFunc(a.state)))
	mux.Handle("GET /api/v1/audit", a.Auth.Require(auth.RoleViewer, http.HandlerFunc(a.auditList)))
	mux.Handle("POST /api/v1/rollouts", a.Auth.Require(auth.RoleOperator, http.HandlerFunc(a.start)))
	mux.Handle("POST /api/v1/rollouts/{id}/{action}", a.Auth.Require(auth.RoleOperator, http.HandlerFunc(a.act)))
	mux.Handle("POST /api/v1/rollbacks", a.Auth.Require(auth.RoleOperator, http.HandlerFunc(a.requestRollback)))
	mux.Handle("POST /api/v1/rollbacks/{id}/{decision}", a.Auth.Require(auth.RoleApprover, http.HandlerFunc(a.decide)))
}

// maxAPIBody bounds admin request bodies.
const maxAPIBody = 64 << 10

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err == nil && len(body) > 0 {
		err = json.Unmarshal(body, v)
	}
	if err != nil {
		http.Error(w, "bad request body: "+err.Error(), http.StatusBadRequest)
		return false
	}
	return true
}

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// HTTPStatus maps controller errors to HTTP statuses.
func HTTPStatus(err error) int {
	switch {
	case errors.Is(err, ErrNotFound):
		return http.StatusNotFound
	case errors.Is(err, ErrConflict):
		return http.StatusConflict
	case errors.Is(err, ErrForbidden):
		return http.StatusForbidden
	case errors.Is(err, ErrInvalid):
		return http.StatusBadRequest
	}
	return http.StatusInternalServerError
}

func fail(w http.ResponseWriter, err error) {
	http.Error(w, err.Error(), HTTPStatus(err))
}

func principal(r *http.Request) auth.Principal {
	p, _ := auth.FromContext(r.Context())
	return p
}

// StateView is what GET /api/v1/state returns.
type StateView struct {
	State
	Route any `json:"route"`
}

func (a API) state(w http.ResponseWriter, r *http.Request) {
	st := a.C.State()
	reply(w, StateView{State: st, Route: routeOf(st)})
}

func (a API) auditList(w http.ResponseWriter, r *http.Request) {
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	if limit <= 0 || limit > 1000 {
		limit = 100
	}
	entries, err := a.C.audit.List(r.Context(), limit)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, entries)
}

func (a API) start(w http.ResponseWriter, r *http.Request) {
	var req StartRequest
	if !decode(w, r, &req) {
		return
	}
	ro, err := a.C.Start(r.Context(), principal(r).Name, req)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, ro)
}

type reasonBody struct {
	Reason string `json:"reason"`
}

func (a API) act(w http.ResponseWriter, r *http.Request) {
	var b reasonBody
	if !decode(w, r, &b) {
		return
	}
	if err := a.C.Act(r.Context(), principal(r).Name, r.PathValue("action"), r.PathValue("id"), b.Reason); err != nil {
		fail(w, err)
		return
	}
	a.state(w, r)
}

func (a API) requestRollback(w http.ResponseWriter, r *http.Request) {
	var b reasonBody
	if !decode(w, r, &b) {
		return
	}
	rb, err := a.C.RequestRollback(r.Context(), principal(r).Name, b.Reason)
	if err != nil {
		fail(w, err)
		return
	}
	reply(w, rb)
}

func (a API) decide(w http.ResponseWriter, r *http.Request) {
	var b reasonBody
	if !decode(w, r, &b) {
		return
	}
	d := r.PathValue("decision")
	if d != "approve" && d != "reject" {
		http.Error(w, "decision must be approve or reject", http.StatusNotFound)
		return
	}
	if err := a.C.Decide(r.Context(), principal(r), r.PathValue("id"), d == "approve", b.Reason); err != nil {
		fail(w, err)
		return
	}
	a.state(w, r)
}

// AuditTrail returns the newest limit audit entries, newest first.
func (c *Controller) AuditTrail(ctx context.Context, limit int) ([]Entry, error) {
	return c.audit.List(ctx, limit)
}

// Route returns the route the current state implies.
func (c *Controller) Route() router.Route { return routeOf(c.State()) }
