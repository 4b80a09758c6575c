// Package stats holds the two-sample tests and effect sizes that drift
// detection is built on: a kernel MMD permutation test for embeddings,
// chi-square and G tests plus distance measures for categorical features,
// the two-sample Kolmogorov–Smirnov test for numeric features, and
// multiple-comparison corrections for when many features are tested at once.
//
// Everything is pure Go so that the detector can run inside the service
// without a Python sidecar. Where a scipy function exists, the results are
// kept numerically close to it (scipy 1.10), because that is what analysts
// use to double-check an alert; the tests pin reference values produced by
// testdata/reference.py.
package stats
