// Package activelearning picks, within a budget, the production images an
// annotator should label next, and stores each pick with its reasons in
// ClickHouse (al_picks), where the labelling queue (activelearning/queue)
// takes it up.
//
// A run reads the predictions of a time window that match the filters and
// are neither picked nor labelled yet, scores them (activelearning/score:
// uncertainty, stable-vs-canary disagreement, foreignness from the drift job),
// keeps the highest-scoring PoolFactor × budget, loads their DINOv2
// embeddings and hands them to activelearning/selection, seeded with the
// embeddings of items already queued or labelled, so near-duplicates are never
// picked twice and per-class and per-source quotas hold. The daily budget
// counts every pick of the UTC day.
//
// Selection has a single owner: run it either on the schedule of
// `lookout al serve` (activelearning.schedule: true) or from cron with
// `lookout al select`, never both, so two runs cannot pick near-duplicates of
// each other at the same moment.
package activelearning
