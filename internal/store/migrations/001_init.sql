-- Predictions, one row per event. ReplacingMergeTree keyed by event_id makes a
-- redelivered event collapse into one row; readers use FINAL or uniqExact.
-- Ingest sends the sorted class names once per row as class_set ("a,b,c")
-- and lets the server expand prob_classes: appending 12 strings a row
-- through the client was the largest cost of the insert path.
CREATE TABLE IF NOT EXISTS {{db}}.predictions (
    event_id        String,
    ts              DateTime,
    ts_ms           UInt64,
    model           String,
    model_version   String,
    source          String,
    task            String,
    image_uri       String,
    predicted_class String,
    confidence      Float32,
    margin          Float32,
    entropy         Float32,
    class_set       String,
    prob_classes    Array(String) DEFAULT splitByChar(',', class_set),
    prob_values     Array(Float32),
    box_classes     Array(String),
    box_scores      Array(Float32),
    box_xyxy        Array(Array(Float32)),
    latency_ms      Nullable(Float32),
    arm             String,
    rollout_id      String,
    schema_version  UInt8,
    ingested_at     DateTime
) ENGINE = ReplacingMergeTree(ingested_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (model, source, toStartOfHour(ts), event_id);

-- Embeddings of the sampled images. embedder names the model file and its
-- hash: vectors from different embedders live in different spaces.
CREATE TABLE IF NOT EXISTS {{db}}.embeddings (
    event_id        String,
    ts              DateTime,
    ts_ms           UInt64,
    model           String,
    model_version   String,
    source          String,
    predicted_class String,
    confidence      Float32,
    embedder        String,
    sample_weight   Float32,
    embedding       Array(Float32),
    embedded_at     DateTime
) ENGINE = ReplacingMergeTree(embedded_at)
PARTITION BY toYYYYMM(ts)
ORDER BY (embedder, model, source, toStartOfHour(ts), event_id);

-- Ground truth. A later label from the same annotator replaces the earlier one.
CREATE TABLE IF NOT EXISTS {{db}}.labels (
    event_id     String,
    label        String,
    box_classes  Array(String),
    box_scores   Array(Float32),
    box_xyxy     Array(Array(Float32)),
    annotator    String,
    ts           DateTime,
    ts_ms        UInt64,
    ingested_at  DateTime
) ENGINE = ReplacingMergeTree(ts_ms)
PARTITION BY toYYYYMM(ts)
ORDER BY (event_id, annotator);

-- One row per test per scope per drift run.
CREATE TABLE IF NOT EXISTS {{db}}.drift_reports (
    run_at     DateTime,
    model      String,
    source     String,
    embedder   String,
    test       String,
    status     String,
    statistic  Float64,
    p_value    Float64,
    effect     Float64,
    min_effect Float64,
    alpha      Float64,
    flagged    UInt8,
    n_ref      UInt32,
    n_cur      UInt32,
    ref_from   DateTime,
    ref_to     DateTime,
    cur_from   DateTime,
    cur_to     DateTime,
    detail     String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(run_at)
ORDER BY (model, source, test, run_at);
