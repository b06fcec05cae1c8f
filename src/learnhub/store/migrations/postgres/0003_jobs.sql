-- The job queue. A job is 'waiting' while parents are unfinished (waiting_on counts them),
-- 'queued' when it may run, 'running' under a worker's lease, then 'succeeded', 'failed' or
-- 'cancelled'. Claim order: priority, then the flow's start, then id.
CREATE TABLE jobs (
    id              BIGSERIAL PRIMARY KEY,
    queue           TEXT NOT NULL,
    task            TEXT NOT NULL,
    args            TEXT NOT NULL,
    priority        INTEGER NOT NULL,
    flow_id         TEXT NOT NULL,
    flow_started_ns BIGINT NOT NULL,
    state           TEXT NOT NULL CHECK (state IN
                        ('waiting', 'queued', 'running', 'succeeded', 'failed', 'cancelled')),
    waiting_on      INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    run_after_ns    BIGINT NOT NULL,
    timeout_s       DOUBLE PRECISION,
    lease_until_ns  BIGINT,
    worker_id       TEXT,
    dedupe_key      TEXT,
    result          TEXT,
    error           TEXT,
    traceback       TEXT,
    created_ns      BIGINT NOT NULL,
    started_ns      BIGINT,
    finished_ns     BIGINT
);

CREATE INDEX jobs_claim ON jobs (priority, flow_started_ns, id) WHERE state = 'queued';
-- A queue churns: keep its statistics and dead rows in check well before the defaults would.
ALTER TABLE jobs SET (autovacuum_analyze_scale_factor = 0.02, autovacuum_vacuum_scale_factor = 0.05);
CREATE INDEX jobs_running ON jobs (worker_id) WHERE state = 'running';
CREATE INDEX jobs_flow ON jobs (flow_id);
-- For pruning; not led by state, so that claims keep to jobs_claim.
CREATE INDEX jobs_finished ON jobs (finished_ns) WHERE state = 'succeeded';
-- One live job per dedupe key; a finished one frees the key.
CREATE UNIQUE INDEX jobs_dedupe ON jobs (dedupe_key)
    WHERE dedupe_key IS NOT NULL AND state IN ('waiting', 'queued', 'running');

-- A child waits for its parents; on_failure says what a parent's failure does to it.
CREATE TABLE job_edges (
    parent_id  BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    child_id   BIGINT NOT NULL REFERENCES jobs (id) ON DELETE CASCADE,
    on_failure TEXT NOT NULL CHECK (on_failure IN ('cancel', 'ignore')),
    PRIMARY KEY (parent_id, child_id)
);

CREATE INDEX job_edges_child ON job_edges (child_id);

-- Recurring jobs. next_ns moves forward by compare-and-set, so when many hubs share the
-- database exactly one of them enqueues each tick.
CREATE TABLE schedules (
    name      TEXT PRIMARY KEY,
    task      TEXT NOT NULL,
    args      TEXT NOT NULL,
    queue     TEXT NOT NULL,
    priority  INTEGER NOT NULL,
    every_s   DOUBLE PRECISION,
    cron      TEXT,
    next_ns   BIGINT NOT NULL
);
