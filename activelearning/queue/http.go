package queue

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/lookout-dev/lookout/internal/auth"
	"github.com/lookout-dev/lookout/internal/event"
)

// MaxFetch bounds how many items one fetch may lease.
const MaxFetch = 100

// Routes registers the annotator API on mux, authenticated by a. The calling
// token's name is the annotator.
//
//	POST /api/al/next?n=N                   lease up to N items (annotator)
//	POST /api/al/items/{id}/renew           {"lease_id"} → new lease_until
//	POST /api/al/items/{id}/release         {"lease_id"}
//	POST /api/al/items/{id}/skip            {"lease_id","reason"}
//	POST /api/al/items/{id}/submit          {"lease_id","label"} or boxes
//	GET  /api/al/items/{id}                 the item's state (viewer)
//	GET  /api/al/stats                      counts by state (viewer)
func (q *Queue) Routes(mux *http.ServeMux, a *auth.Authenticator) {
	ann := func(h func(http.ResponseWriter, *http.Request, string) error) http.Handler {
		return a.Require(auth.RoleAnnotator, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			p, _ := auth.FromContext(r.Context())
			if err := h(w, r, p.Name); err != nil {
				if writeError(w, err) == http.StatusInternalServerError {
					q.log.Error("queue api call failed", "path", r.URL.Path, "annotator", p.Name, "err", err)
				}
			}
		}))
	}
	mux.Handle("POST /api/al/next", ann(q.handleNext))
	mux.Handle("POST /api/al/items/{id}/renew", ann(q.handleRenew))
	mux.Handle("POST /api/al/items/{id}/release", ann(q.handleRelease))
	mux.Handle("POST /api/al/items/{id}/skip", ann(q.handleSkip))
	mux.Handle("POST /api/al/items/{id}/submit", ann(q.handleSubmit))
	mux.Handle("GET /api/al/items/{id}", a.Require(auth.RoleViewer, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s, ok := q.Get(r.PathValue("id"))
		if !ok {
			writeError(w, ErrNotFound)
			return
		}
		writeJSON(w, http.StatusOK, s)
	})))
	mux.Handle("GET /api/al/stats", a.Require(auth.RoleViewer, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]any{"counts": q.Counts()})
	})))
}

// Request is the body of item operations.
type Request struct {
	LeaseID string      `json:"lease_id"`
	Label   string      `json:"label,omitempty"`
	Boxes   []event.Box `json:"boxes,omitempty"`
	Reason  string      `json:"reason,omitempty"`
}

func (q *Queue) handleNext(w http.ResponseWriter, r *http.Request, who string) error {
	n := 1
	if s := r.URL.Query().Get("n"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 || v > MaxFetch {
			return errors.Join(ErrInvalid, errors.New("n must be 1…100"))
		}
		n = v
	}
	leases, err := q.Next(r.Context(), who, n)
	if err != nil {
		return err
	}
	if leases == nil {
		leases = []Lease{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": leases})
	return nil
}

func readRequest(r *http.Request) (Request, error) {
	var req Request
	r.Body = http.MaxBytesReader(nil, r.Body, 1<<20)
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		return req, errors.Join(ErrInvalid, err)
	}
	return req, nil
}

func (q *Queue) handleRenew(w http.ResponseWriter, r *http.Request, who string) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	until, err := q.Renew(r.Context(), who, r.PathValue("id"), req.LeaseID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"lease_until": until})
	return nil
}

func (q *Queue) handleRelease(w http.ResponseWriter, r *http.Request, who string) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	if err := q.Release(r.Context(), who, r.PathValue("id"), req.LeaseID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"released": true})
	return nil
}

func (q *Queue) handleSkip(w http.ResponseWriter, r *http.Request, who string) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	if req.Reason == "" {
		return errors.Join(ErrInvalid, errors.New("a reason is required to skip"))
	}
	if len(req.Reason) > 500 {
		req.Reason = req.Reason[:500]
	}
	if err := q.Skip(r.Context(), who, r.PathValue("id"), req.LeaseID, req.Reason); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"skipped": true})
	return nil
}

func (q *Queue) handleSubmit(w http.ResponseWriter, r *http.Request, who string) error {
	req, err := readRequest(r)
	if err != nil {
		return err
	}
	if err := q.Submit(r.Context(), who, r.PathValue("id"), req.LeaseID, req.Label, req.Boxes); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, map[string]any{"submitted": true, "at": time.Now().UTC()})
	return nil
}

func writeError(w http.ResponseWriter, err error) int {
	code := http.StatusInternalServerError
	switch {
	case errors.Is(err, ErrInvalid):
		code = http.StatusBadRequest
	case errors.Is(err, ErrNotFound):
		code = http.StatusNotFound
	case errors.Is(err, ErrNotHeld), errors.Is(err, ErrDone):
		code = http.StatusConflict
	}
	msg := err.Error()
	if code == http.StatusInternalServerError {
		msg = "internal error" // storage details stay in the server log
	}
	writeJSON(w, code, map[string]string{"error": msg})
	return code
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}
