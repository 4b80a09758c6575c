-- Drift detection (issue 5): the scope becomes model × model_version × source,
-- reports name the reference they compared against, and three new tables hold
-- pinned reference windows, explanations of flagged drift and the estimated
-- versus realised accuracy per scope.
-- ClickHouse 18.16 has no ADD COLUMN IF NOT EXISTS; the migration runner
-- applies this file once per database (run `lookout migrate` from one place).
ALTER TABLE {{db}}.drift_reports ADD COLUMN model_version String DEFAULT '' AFTER model;
ALTER TABLE {{db}}.drift_reports ADD COLUMN reference String DEFAULT '' AFTER detail;

-- Pinned reference windows, one live row per scope. Replacing a pin inserts a
-- newer row (higher version); deleting inserts a tombstone (deleted = 1).
-- Readers use FINAL. from_* name the scope whose data forms the reference:
-- the scope itself, or another one it was imported from.
CREATE TABLE IF NOT EXISTS {{db}}.drift_references (
    model         String,
    model_version String,
    source        String,
    from_model    String,
    from_version  String,
    from_source   String,
    ref_from      DateTime,
    ref_to        DateTime,
    note          String,
    created_by    String,
    created_at    DateTime,
    version       UInt64,
    deleted       UInt8
) ENGINE = ReplacingMergeTree(version)
ORDER BY (model, model_version, source);

-- What drives a flagged drift: classes whose share moved, scores and
-- projections/dimensions that moved, per-class slices, and the current-window
-- events least like the reference (these feed the active-learning queue).
CREATE TABLE IF NOT EXISTS {{db}}.drift_explanations (
    run_at        DateTime,
    model         String,
    model_version String,
    source        String,
    test          String,
    kind          String,
    rank          UInt16,
    item          String,
    value         Float64,
    p_value       Float64,
    detail        String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (model, model_version, source, run_at, test, kind, rank);

-- Accuracy per scope and run: estimated without labels (mean confidence,
-- ATC) and realised from labels where they exist; value is NaN when unknown.
CREATE TABLE IF NOT EXISTS {{db}}.drift_accuracy (
    run_at        DateTime,
    model         String,
    model_version String,
    source        String,
    method        String,
    value         Float64,
    n             UInt32
) ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (model, model_version, source, method, run_at);
