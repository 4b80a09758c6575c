// Package simulate generates the prediction and label traffic that lookout's
// demo and tests run against: a fleet of line cameras looking at metal parts,
// a defect classifier judging each picture, and an annotator labelling a
// sample of them.
//
// The traffic is realistic in the ways lookout cares about. Every event
// points at a real JPEG on disk, so the embedder has pixels to look at. One
// camera undergoes a visible domain shift after a configurable delay (darker,
// colour-cast, blurred, noisier pictures), and the simulated classifier
// reacts the way real models do: it grows less confident and drifts towards
// a few wrong classes. That gives the drift detector, the accuracy metrics and
// the active-learning queue something true to find.
//
// Everything is deterministic for a given seed and sequence of timestamps, so
// tests can assert exact outcomes and demos are reproducible.
package simulate
