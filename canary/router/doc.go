// Package router is lookout's canary router: an HTTP reverse proxy in front of
// model servers that splits traffic between a stable and a canary version with
// sticky, consistent-hash assignment, mirrors a share to the canary in shadow
// mode, guards each backend with a circuit breaker, and turns every routed
// model response into a prediction event (with its arm and rollout id) so the
// rest of lookout sees canary traffic like any other.
//
// The proxy path runs on fasthttp: Serve on a listener (Handler is the
// fasthttp handler), one keep-alive fasthttp.HostClient per backend, and
// Shutdown to drain. Per request it parses the model's answer and the image
// URI with fastjson and encodes the event by hand (byte-identical to
// event.Prediction.Encode).
//
// The route (which backends, what weight) is swapped atomically; requests in
// flight finish on the route they started with.
package router
