package ingest

// BuildBatch exposes buildBatch to the benchmarks of package ingest_test.
var BuildBatch = buildBatch
