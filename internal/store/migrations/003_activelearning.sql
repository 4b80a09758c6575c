-- Active learning (issue 7). al_picks is the queue's enqueue log: every item
-- a selection run picked, with its scores and reasons. One row per event_id
-- (ReplacingMergeTree collapses a re-insert); readers use LIMIT 1 BY event_id.
CREATE TABLE IF NOT EXISTS {{db}}.al_picks (
    event_id        String,
    selection_id    String,
    picked_at       DateTime,
    picked_ms       UInt64,
    rank            UInt32,
    model           String,
    model_version   String,
    source          String,
    task            String,
    arm             String,
    image_uri       String,
    predicted_class String,
    prob_classes    Array(String),
    prob_values     Array(Float32),
    box_classes     Array(String),
    box_scores      Array(Float32),
    box_xyxy        Array(Array(Float32)),
    embedder        String,
    score           Float32,
    reasons         Array(String),
    score_names     Array(String),
    score_values    Array(Float32)
) ENGINE = ReplacingMergeTree(picked_ms)
PARTITION BY toYYYYMM(picked_at)
ORDER BY event_id;

-- Append-only log of queue transitions (leased, renewed, released, expired,
-- skipped, discarded, submitted, published). The queue owner writes an event
-- before it acts on it and rebuilds its state by replaying the log in seq
-- order, so a restart loses nothing and never hands an item out twice.
CREATE TABLE IF NOT EXISTS {{db}}.al_queue_events (
    seq            UInt64,
    at             DateTime,
    at_ms          UInt64,
    event_id       String,
    kind           String,
    annotator      String,
    lease_id       String,
    lease_until_ms UInt64,
    label          String,
    box_classes    Array(String),
    box_scores     Array(Float32),
    box_xyxy       Array(Array(Float32)),
    reason         String,
    owner          String
) ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY seq;

-- Heartbeats of the queue owner (lookout al serve). A second instance
-- refuses to start while another owner's heartbeat is fresh.
CREATE TABLE IF NOT EXISTS {{db}}.al_owners (
    owner  String,
    host   String,
    at     DateTime,
    at_ms  UInt64
) ENGINE = MergeTree
PARTITION BY toYYYYMM(at)
ORDER BY (owner, at_ms);
