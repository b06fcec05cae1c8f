-- The ai part's keyspace: tensors, models and scripts by key, as RedisAI keeps them.
-- meta is JSON (dtype and shape; backend, device, tag, batching; entry points); blob the bytes.
CREATE TABLE ai_keys (
    key        TEXT PRIMARY KEY,
    type       TEXT NOT NULL CHECK (type IN ('tensor', 'model', 'script')),
    meta       TEXT NOT NULL,
    blob       BYTEA NOT NULL,
    updated_ns BIGINT NOT NULL
);
