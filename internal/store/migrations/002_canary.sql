-- Append-only audit trail of the canary router and rollout controller: one
-- row per state change (who, when, what, why, the analysis behind it). The
-- state column is the controller's whole state after the change, so the
-- newest row alone rebuilds it at start and a restart never changes which
-- version serves traffic. Rows are never updated or deleted.
CREATE TABLE IF NOT EXISTS {{db}}.canary_audit (
    seq            UInt64,
    ts             DateTime,
    ts_ms          UInt64,
    actor          String,
    action         String,
    rollout_id     String,
    request_id     String,
    reason         String,
    stable         String,
    canary         String,
    canary_percent Float64,
    metrics        String,
    state          String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (seq, ts_ms);
