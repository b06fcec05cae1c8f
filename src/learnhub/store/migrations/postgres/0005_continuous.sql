-- Continuous learning. A batch is a named series of samples ('training') or of inference
-- outputs ('inference'); its column schema is fixed by its first write. Rows live in chunks,
-- sorted by ts: ts and is_train as packed arrays (cheap counts since t), the user's columns
-- as one Arrow IPC stream.
CREATE TABLE sample_batches (
    kind       TEXT NOT NULL CHECK (kind IN ('training', 'inference')),
    name       TEXT NOT NULL,
    schema     TEXT NOT NULL,
    last_ts    BIGINT NOT NULL,
    created_ns BIGINT NOT NULL,
    PRIMARY KEY (kind, name)
);

CREATE TABLE sample_chunks (
    id         BIGSERIAL PRIMARY KEY,
    kind       TEXT NOT NULL,
    batch      TEXT NOT NULL,
    first_ts   BIGINT NOT NULL,
    last_ts    BIGINT NOT NULL,
    rows       INTEGER NOT NULL,
    train_rows INTEGER NOT NULL,
    ts         BYTEA NOT NULL,
    is_train   BYTEA NOT NULL,
    data       BYTEA NOT NULL
);

CREATE INDEX sample_chunks_range ON sample_chunks (kind, batch, first_ts, last_ts);

-- Out of line, never compressed: pglz would try (and fail) to compress every chunk of random
-- features, which makes ingest ~5x slower; sorted ts arrays it does shrink, but then each
-- count that straddles a chunk pays to decompress it.
ALTER TABLE sample_chunks
    ALTER COLUMN ts SET STORAGE EXTERNAL,
    ALTER COLUMN is_train SET STORAGE EXTERNAL,
    ALTER COLUMN data SET STORAGE EXTERNAL;

-- A model of a batch: its bytes are the learning-data artifact model/<batch> at `version`;
-- its status is the user's (e.g. 'training', 'ready'), and it knows the data it learned from.
CREATE TABLE models (
    id           BIGSERIAL PRIMARY KEY,
    batch        TEXT NOT NULL,
    version      TEXT NOT NULL,
    status       TEXT NOT NULL,
    metrics      TEXT NOT NULL,
    mode         TEXT,
    data_from_ts BIGINT,
    data_to_ts   BIGINT,
    task_id      BIGINT,
    created_ns   BIGINT NOT NULL
);

CREATE INDEX models_latest ON models (batch, id);

-- One training run of a batch, scratch or finetune, carried by a job. Its status is the
-- user's working status while it runs, then 'done', 'failed' or 'dead' (past its time limit).
CREATE TABLE train_tasks (
    id            BIGSERIAL PRIMARY KEY,
    batch         TEXT NOT NULL,
    mode          TEXT NOT NULL CHECK (mode IN ('scratch', 'finetune')),
    status        TEXT NOT NULL,
    job_id        BIGINT,
    base_model_id BIGINT,
    since_ts      BIGINT,
    model_id      BIGINT,
    error         TEXT,
    traceback     TEXT,
    created_ns    BIGINT NOT NULL,
    started_ns    BIGINT,
    finished_ns   BIGINT
);

CREATE INDEX train_tasks_batch ON train_tasks (batch, id);
