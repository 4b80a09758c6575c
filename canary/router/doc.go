// Package router is lookout's canary router: an HTTP reverse proxy in front of
// model servers that splits traffic between a stable and a canary version with
// sticky, consistent-hash assignment, mirrors a share to the canary in shadow
// mode, guards each backend with a circuit breaker, and turns every routed
// model response into a prediction event (with its arm and rollout id) so the
// rest of lookout sees canary traffic like any other.
//
// The route (which backends, what weight) is swapped atomically; requests in
// flight finish on the route they started with.
package router
