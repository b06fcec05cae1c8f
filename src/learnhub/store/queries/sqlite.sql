-- All the SQL the SQLite backend runs, by name. queries/postgres.sql holds the same names.

-- name: lock_migrations
-- BEGIN IMMEDIATE already holds the write lock; nothing more to take.
SELECT 1

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_ns INTEGER NOT NULL
)

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version, name, applied_ns) VALUES (:version, :name, :applied_ns)

-- name: get_meta
SELECT value FROM meta WHERE name = :name

-- name: init_meta
-- Sets a value only if it has none yet: two processes racing both read the winner's value.
INSERT INTO meta (name, value) VALUES (:name, :value) ON CONFLICT (name) DO NOTHING

-- name: insert_blob
INSERT INTO blobs (hash, size, data) VALUES (:hash, :size, :data) ON CONFLICT (hash) DO NOTHING

-- name: insert_artifact
INSERT INTO artifacts (key, version, metric, attrs, origin, base, created_ns)
VALUES (:key, :version, :metric, :attrs, :origin, :base, :created_ns)
ON CONFLICT (key, version) DO NOTHING

-- name: insert_artifact_file
INSERT INTO artifact_files (key, version, name, blob_hash)
VALUES (:key, :version, :name, :blob_hash)

-- name: insert_artifact_attr
INSERT INTO artifact_attrs (key, version, name, value)
VALUES (:key, :version, :name, :value)

-- name: best_artifact
-- The best version of a key: lowest metric, then newest.
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries a
WHERE a.key = :key
ORDER BY a.metric ASC, a.created_ns DESC, a.seq DESC
LIMIT 1

-- name: best_artifact_where
-- The best version of a key that has all :n_where attributes of :where, a JSON object of
-- name: text. The index walks the versions best first and each is checked by primary-key
-- probes, so this stops at the first match.
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries a
WHERE a.key = :key
  AND :n_where = (
      SELECT count(*) FROM artifact_attrs t, json_each(:where) w
      WHERE t.key = a.key AND t.version = a.version AND t.name = w.key AND t.value = w.value)
ORDER BY a.metric ASC, a.created_ns DESC, a.seq DESC
LIMIT 1

-- name: attr_names
SELECT DISTINCT name FROM artifact_attrs WHERE key = :key ORDER BY name

-- name: has_attr
SELECT 1 AS found FROM artifact_attrs WHERE key = :key AND name = :name LIMIT 1

-- name: has_key
SELECT 1 AS found FROM artifacts WHERE key = :key LIMIT 1

-- name: artifact_versions
-- A key's versions, newest first.
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries
WHERE key = :key
ORDER BY created_ns DESC, seq DESC

-- name: artifact_version
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries
WHERE key = :key AND version = :version

-- name: artifact_files
SELECT f.name, b.data
FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
WHERE f.key = :key AND f.version = :version
ORDER BY f.name

-- name: artifact_counts
SELECT count(DISTINCT key) AS keys, count(*) AS versions FROM artifacts

-- name: artifact_keys
SELECT key, count(*) AS versions, min(metric) AS best_metric, max(created_ns) AS updated_ns
FROM artifacts
WHERE key LIKE :prefix || '%' ESCAPE '\'
GROUP BY key
ORDER BY key


-- learning: combinations -------------------------------------------------------------------

-- name: lock_learning_key
-- BEGIN IMMEDIATE already holds the write lock: a store's policy decision and its write
-- are one transaction.
SELECT 1

-- name: head_artifact
-- The key's current version under the head-based policies: the last one made current.
SELECT a.version, a.metric, a.attrs, a.origin, a.base, a.created_ns, a.sizes
FROM artifact_heads h JOIN artifact_summaries a ON a.key = h.key AND a.version = h.version
WHERE h.key = :key
ORDER BY h.seq DESC
LIMIT 1

-- name: head_artifact_where
-- The last version made current that has all :n_where attributes of :where.
SELECT a.version, a.metric, a.attrs, a.origin, a.base, a.created_ns, a.sizes
FROM artifact_heads h JOIN artifact_summaries a ON a.key = h.key AND a.version = h.version
WHERE h.key = :key
  AND :n_where = (
      SELECT count(*) FROM artifact_attrs t, json_each(:where) w
      WHERE t.key = a.key AND t.version = a.version AND t.name = w.key AND t.value = w.value)
ORDER BY h.seq DESC
LIMIT 1

-- name: set_head
-- Makes :version the key's current version, unless it already is (one statement: no read
-- and write round trip on the hot path of a store).
INSERT INTO artifact_heads (key, version, created_ns)
SELECT :key, :version, :created_ns
WHERE :version IS NOT (SELECT version FROM artifact_heads WHERE key = :key
                       ORDER BY seq DESC LIMIT 1)

-- name: newest_artifact
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries
WHERE key = :key
ORDER BY created_ns DESC, seq DESC
LIMIT 1

-- name: insert_combination
INSERT INTO artifact_combinations (key, policy, base, current_version, incoming_version,
                                   result_version, detail, created_ns)
VALUES (:key, :policy, :base, :current_version, :incoming_version, :result_version, :detail,
        :created_ns)

-- name: artifact_combinations
-- A key's combinations, newest first.
SELECT policy, base, current_version, incoming_version, result_version, detail, created_ns
FROM artifact_combinations
WHERE key = :key
ORDER BY seq DESC


-- Jobs ---------------------------------------------------------------------------------

-- name: insert_job
-- A live job with the same dedupe key makes this insert nothing (and return no row).
INSERT INTO jobs (queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on,
                  max_attempts, run_after_ns, timeout_s, dedupe_key, error, created_ns,
                  finished_ns)
VALUES (:queue, :task, :args, :priority, :flow_id, :flow_started_ns,
        :state, :waiting_on, :max_attempts, :run_after_ns, :timeout_s,
        :dedupe_key, :error, :created_ns, :finished_ns)
ON CONFLICT DO NOTHING
RETURNING id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns

-- name: insert_jobs
-- Many queued jobs without parents or dedupe keys in one statement: :jobs is a JSON array
-- of {i, queue, task, args, priority, flow_id, max_attempts, run_after_ns, timeout_s},
-- inserted in the order of i.
INSERT INTO jobs (queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on,
                  max_attempts, run_after_ns, timeout_s, created_ns)
SELECT json_extract(value, '$.queue'), json_extract(value, '$.task'),
       json_extract(value, '$.args'), json_extract(value, '$.priority'),
       json_extract(value, '$.flow_id'), :now_ns, 'queued', 0,
       json_extract(value, '$.max_attempts'), json_extract(value, '$.run_after_ns'),
       json_extract(value, '$.timeout_s'), :now_ns
FROM json_each(:jobs)
ORDER BY json_extract(value, '$.i')
RETURNING id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns

-- name: live_job_by_dedupe_key
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs
WHERE dedupe_key = :dedupe_key AND state IN ('waiting', 'queued', 'running')

-- name: insert_edge
INSERT INTO job_edges (parent_id, child_id, on_failure)
VALUES (:parent_id, :child_id, :on_failure)

-- name: get_job
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs WHERE id = :id

-- name: jobs_by_ids
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs WHERE id IN (SELECT value FROM json_each(:ids))

-- name: list_jobs
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs
WHERE (:state IS NULL OR state = :state)
  AND (:queue IS NULL OR queue = :queue)
  AND (:flow_id IS NULL OR flow_id = :flow_id)
ORDER BY id DESC
LIMIT :limit

-- name: flow_edges
SELECT e.parent_id, e.child_id, e.on_failure
FROM job_edges e JOIN jobs j ON j.id = e.child_id
WHERE j.flow_id = :flow_id

-- name: job_children
SELECT e.child_id, e.on_failure FROM job_edges e WHERE e.parent_id = :id

-- name: job_parents
SELECT e.parent_id, e.on_failure FROM job_edges e WHERE e.child_id = :id

-- name: job_stats
SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state

-- name: refresh_job_stats
-- SQLite plans the claim from its partial index without statistics.
SELECT 1

-- name: claim_jobs
-- Takes up to :limit runnable jobs, best first, for one worker. On PostgreSQL, SKIP LOCKED
-- lets concurrent workers take different jobs instead of queueing behind each other.
UPDATE jobs
SET state = 'running', attempts = attempts + 1, worker_id = :worker_id,
    lease_until_ns = :lease_until_ns, started_ns = :now_ns
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'queued' AND run_after_ns <= :now_ns
      AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))
    ORDER BY priority, flow_started_ns, id
    LIMIT :limit
)
RETURNING id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns

-- name: next_run_after
-- When the earliest queued job in these queues may run (NULL: none is queued).
SELECT min(run_after_ns) AS run_after_ns FROM jobs
WHERE state = 'queued' AND (:queues IS NULL OR queue IN (SELECT value FROM json_each(:queues)))

-- name: finish_job
-- Only the worker that holds the job may finish it: after a lost lease, its late result
-- finds the job requeued or taken by another worker and changes nothing.
UPDATE jobs
SET state = :state, result = :result, error = :error, traceback = :traceback,
    finished_ns = :now_ns, lease_until_ns = NULL
WHERE id = :id AND state = 'running' AND worker_id = :worker_id
RETURNING id, task

-- name: finish_jobs
-- Records many outcomes at once, :outcomes being a JSON array of {id, state, result, error,
-- traceback}; like finish_job, only jobs this worker still holds change.
UPDATE jobs
SET state = json_extract(o.value, '$.state'), result = json_extract(o.value, '$.result'),
    error = json_extract(o.value, '$.error'), traceback = json_extract(o.value, '$.traceback'),
    finished_ns = :now_ns, lease_until_ns = NULL
FROM json_each(:outcomes) AS o
WHERE jobs.id = json_extract(o.value, '$.id') AND jobs.state = 'running'
  AND jobs.worker_id = :worker_id
RETURNING id, task, state,
          EXISTS (SELECT 1 FROM job_edges e WHERE e.parent_id = jobs.id) AS has_children

-- name: requeue_job
-- A running job back to the queue after a failed attempt, to run again at :run_after_ns.
UPDATE jobs
SET state = 'queued', run_after_ns = :run_after_ns, error = :error,
    traceback = :traceback, worker_id = NULL, lease_until_ns = NULL
WHERE id = :id AND state = 'running' AND worker_id = :worker_id
RETURNING id

-- name: release_child
-- A parent is done with this child: one fewer to wait on, and runnable when none is left.
UPDATE jobs
SET waiting_on = waiting_on - 1,
    state = CASE WHEN state = 'waiting' AND waiting_on = 1 THEN 'queued' ELSE state END
WHERE id = :id
RETURNING state, queue

-- name: hold_join
-- A job that is not running yet gets one more parent to wait for.
UPDATE jobs
SET waiting_on = waiting_on + 1, state = 'waiting'
WHERE id = :id AND state IN ('waiting', 'queued')
RETURNING id

-- name: cancel_job
UPDATE jobs
SET state = 'cancelled', error = :error, finished_ns = :now_ns, lease_until_ns = NULL
WHERE id = :id AND state IN ('waiting', 'queued', 'running')
RETURNING id, task

-- name: retry_job
UPDATE jobs
SET state = CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'queued' END, attempts = 0,
    run_after_ns = :now_ns, error = NULL, traceback = NULL, result = NULL,
    worker_id = NULL, started_ns = NULL, finished_ns = NULL
WHERE id = :id AND state IN ('failed', 'cancelled')
RETURNING id

-- name: revive_cancelled
-- Jobs cancelled because job :id failed wait again, now that it is retried.
UPDATE jobs
SET state = CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'queued' END, error = NULL,
    finished_ns = NULL
WHERE state = 'cancelled' AND error LIKE :prefix
RETURNING id, task

-- name: renew_leases
UPDATE jobs SET lease_until_ns = :lease_until_ns
WHERE worker_id = :worker_id AND state = 'running'

-- name: renew_lease
UPDATE jobs SET lease_until_ns = :lease_until_ns
WHERE id = :id AND worker_id = :worker_id AND state = 'running'
RETURNING id

-- name: lost_jobs
-- Running jobs whose worker stopped renewing the lease: it died. (A live worker enforces
-- timeouts itself, from the moment a job really starts.)
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs
WHERE state = 'running'
  AND lease_until_ns < :now_ns

-- name: prune_jobs
DELETE FROM jobs WHERE state = 'succeeded' AND finished_ns < :before_ns

-- name: notify_jobs
SELECT 1  -- SQLite has no NOTIFY: other processes poll

-- Schedules ----------------------------------------------------------------------------

-- name: upsert_schedule
INSERT INTO schedules (name, task, args, queue, priority, every_s, cron, next_ns)
VALUES (:name, :task, :args, :queue, :priority, :every_s, :cron, :next_ns)
ON CONFLICT (name) DO UPDATE
SET task = excluded.task, args = excluded.args, queue = excluded.queue,
    priority = excluded.priority, every_s = excluded.every_s, cron = excluded.cron,
    next_ns = CASE WHEN schedules.every_s IS excluded.every_s
                    AND schedules.cron IS excluded.cron
                   THEN schedules.next_ns ELSE excluded.next_ns END

-- name: due_schedules
SELECT name, task, args, queue, priority, every_s, cron, next_ns FROM schedules
WHERE next_ns <= :now_ns

-- name: advance_schedule
-- Compare-and-set: of several hubs that saw the same tick, one moves it and enqueues.
UPDATE schedules SET next_ns = :new_next_ns
WHERE name = :name AND next_ns = :old_next_ns
RETURNING name

-- name: list_schedules
SELECT name, task, args, queue, priority, every_s, cron, next_ns FROM schedules ORDER BY name

-- peers ------------------------------------------------------------------------------------

-- name: peers_all
SELECT address, node_id, source, added_ns, last_seen_ns, last_exchange_ns, last_error, failures
FROM peers ORDER BY address

-- name: peer_add
-- By hand: an address learned before becomes an added one.
INSERT INTO peers (address, node_id, source, added_ns) VALUES (:address, NULL, :source, :now_ns)
ON CONFLICT (address) DO UPDATE SET source = excluded.source

-- name: peer_learn
-- A peer that said where it listens; an address added by hand keeps its source.
INSERT INTO peers (address, node_id, source, added_ns, last_seen_ns)
VALUES (:address, :node_id, :source, :now_ns, :now_ns)
ON CONFLICT (address) DO UPDATE SET node_id = excluded.node_id, last_seen_ns = excluded.last_seen_ns

-- name: peer_remove
DELETE FROM peers WHERE address = :address

-- name: peer_seen
UPDATE peers SET node_id = :node_id, last_seen_ns = :now_ns, failures = 0, last_error = NULL
WHERE address = :address

-- name: peer_exchanged
UPDATE peers SET last_exchange_ns = :now_ns WHERE address = :address

-- name: peer_failed
UPDATE peers SET failures = failures + 1, last_error = :error WHERE address = :address

-- name: peer_trust_put
INSERT INTO peer_trust (node_id, public_key, added_ns) VALUES (:node_id, :public_key, :now_ns)
ON CONFLICT (node_id) DO UPDATE SET public_key = excluded.public_key

-- name: peer_trust_all
SELECT node_id, public_key, added_ns FROM peer_trust ORDER BY node_id

-- name: peer_trust_remove
DELETE FROM peer_trust WHERE node_id = :node_id

-- name: peer_want_put
INSERT INTO peer_wants (node_id, key, created_ns) VALUES (:node_id, :key, :now_ns)
ON CONFLICT (node_id, key) DO NOTHING

-- name: peer_wants_for
SELECT node_id FROM peer_wants WHERE key = :key ORDER BY node_id

-- name: peer_want_counts
SELECT node_id, count(*) AS wants FROM peer_wants GROUP BY node_id

-- name: peer_wants_by_key
SELECT key, count(*) AS wants FROM peer_wants GROUP BY key

-- name: announcement_put
INSERT INTO peer_announcements (node_id, key, version, metric, announced_ns, received_ns, address)
VALUES (:node_id, :key, :version, :metric, :announced_ns, :received_ns, :address)
ON CONFLICT (node_id, key) DO UPDATE
SET version = excluded.version, metric = excluded.metric, announced_ns = excluded.announced_ns,
    received_ns = excluded.received_ns, address = excluded.address

-- name: announcements_for
-- Who has the key, best first, then the most recent.
SELECT node_id, version, metric, announced_ns, received_ns, address
FROM peer_announcements WHERE key = :key
ORDER BY metric ASC, announced_ns DESC

-- name: announcement_counts
SELECT node_id, count(*) AS keys, max(received_ns) AS last_ns
FROM peer_announcements GROUP BY node_id

-- name: announcements_all
SELECT node_id, key, version, metric, announced_ns, received_ns, address
FROM peer_announcements ORDER BY key, node_id

-- name: peers_last_seq
SELECT coalesce(max(seq), 0) AS seq FROM artifacts

-- name: peers_new_versions
-- Versions stored since the given seq (any process on this database): what is offered to peers.
SELECT seq, key, version, metric, origin, created_ns FROM artifacts
WHERE seq > :after ORDER BY seq LIMIT :limit

-- name: peers_file_hashes
-- A version's files as a transfer manifest: names, content hashes and sizes, no bytes.
SELECT f.name, f.blob_hash, b.size
FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
WHERE f.key = :key AND f.version = :version
ORDER BY f.name

-- name: peers_file_part
-- One file of a version, to serve in parts: on SQLite its blob's rowid, read with incremental
-- blob I/O (Connection.blobopen) so that a part costs what it reads, not the whole file.
SELECT b.rowid AS blob_rowid, b.size, NULL AS data
FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
WHERE f.key = :key AND f.version = :version AND f.name = :name

-- name: peers_digest
-- Each key's best version, in key order after the given key: a page of this hub's digest.
SELECT key, version, metric, created_ns
FROM (SELECT key, version, metric, created_ns,
             row_number() OVER (PARTITION BY key
                                ORDER BY metric ASC, created_ns DESC, seq DESC) AS rank
      FROM artifacts WHERE key > :after) best
WHERE rank = 1
ORDER BY key
LIMIT :limit


-- ai keyspace ------------------------------------------------------------------------------

-- name: ai_get
SELECT key, type, meta, blob, updated_ns FROM ai_keys WHERE key = :key

-- name: ai_get_many
-- Tensors with their bytes, models and scripts without (the caller caches them by updated_ns).
SELECT key, type, meta, CASE WHEN type = 'tensor' THEN blob END AS blob, updated_ns
FROM ai_keys WHERE key IN (SELECT value FROM json_each(:keys))

-- name: ai_put
INSERT INTO ai_keys (key, type, meta, blob, updated_ns)
VALUES (:key, :type, :meta, :blob, :updated_ns)
ON CONFLICT (key) DO UPDATE
SET type = excluded.type, meta = excluded.meta, blob = excluded.blob, updated_ns = excluded.updated_ns

-- name: ai_delete
DELETE FROM ai_keys WHERE key = :key

-- name: ai_delete_typed
DELETE FROM ai_keys WHERE key = :key AND type = :type

-- name: ai_keys
SELECT key, type, meta FROM ai_keys WHERE (:type IS NULL OR type = :type) ORDER BY key

-- name: ai_flush
DELETE FROM ai_keys

-- continuous: samples ------------------------------------------------------------------------

-- name: sample_batch
SELECT kind, name, schema, last_ts, created_ns FROM sample_batches WHERE kind = :kind AND name = :name

-- name: create_sample_batch
INSERT INTO sample_batches (kind, name, schema, last_ts, created_ns)
VALUES (:kind, :name, :schema, 0, :created_ns)
ON CONFLICT (kind, name) DO NOTHING

-- name: reserve_sample_ts
-- :n timestamps for a write, above every one given out before and not before :now_ns;
-- returns the last. The row lock serialises concurrent writers, in any process.
UPDATE sample_batches SET last_ts = max(last_ts + :n, :now_ns + :n - 1)
WHERE kind = :kind AND name = :name
RETURNING last_ts

-- name: raise_sample_ts
-- User-given timestamps up to :max_ts: later automatic ones start above them.
UPDATE sample_batches SET last_ts = max(last_ts, :max_ts)
WHERE kind = :kind AND name = :name

-- name: sample_batches
SELECT b.kind, b.name, b.schema, b.created_ns,
       coalesce(sum(c.rows), 0) AS rows, coalesce(sum(c.train_rows), 0) AS train_rows,
       min(c.first_ts) AS first_ts, max(c.last_ts) AS last_ts
FROM sample_batches b
LEFT JOIN sample_chunks c ON c.kind = b.kind AND c.batch = b.name
WHERE (:kind IS NULL OR b.kind = :kind)
GROUP BY b.kind, b.name ORDER BY b.kind, b.name

-- name: insert_sample_chunk
INSERT INTO sample_chunks (kind, batch, first_ts, last_ts, rows, train_rows, ts, is_train, data)
VALUES (:kind, :batch, :first_ts, :last_ts, :rows, :train_rows, :ts, :is_train, :data)

-- name: count_whole_chunks
-- Rows of the chunks that lie entirely at or after :since.
SELECT coalesce(sum(rows), 0) AS rows, coalesce(sum(train_rows), 0) AS train_rows
FROM sample_chunks WHERE kind = :kind AND batch = :batch AND first_ts >= :since

-- name: straddling_chunks
-- Chunks that begin before :since and end at or after it: counted row by row.
SELECT ts, is_train FROM sample_chunks
WHERE kind = :kind AND batch = :batch AND first_ts < :since AND last_ts >= :since

-- name: sample_chunks
-- Chunks with rows in [:since, :until], oldest first.
SELECT first_ts, last_ts, rows, ts, is_train, data FROM sample_chunks
WHERE kind = :kind AND batch = :batch AND last_ts >= :since AND first_ts <= :until
ORDER BY first_ts, id

-- name: chunk_timestamps
-- The ts arrays of chunks overlapping [:since, :until], to find duplicate timestamps.
SELECT ts FROM sample_chunks
WHERE kind = :kind AND batch = :batch AND last_ts >= :since AND first_ts <= :until

-- continuous: models and training tasks ---------------------------------------------------

-- name: insert_model
INSERT INTO models (batch, version, status, metrics, mode, data_from_ts, data_to_ts, task_id, created_ns)
VALUES (:batch, :version, :status, :metrics, :mode, :data_from_ts, :data_to_ts, :task_id, :created_ns)
RETURNING id

-- name: get_model
SELECT * FROM models WHERE id = :id

-- name: latest_model
-- The newest model of a batch whose status is one of :statuses (a JSON array).
SELECT * FROM models
WHERE batch = :batch AND status IN (SELECT value FROM json_each(:statuses))
ORDER BY id DESC LIMIT 1

-- name: list_models
SELECT * FROM models WHERE batch = :batch ORDER BY id

-- name: set_model_status
UPDATE models SET status = :status WHERE id = :id RETURNING id

-- name: insert_train_task
INSERT INTO train_tasks (batch, mode, status, base_model_id, since_ts, created_ns)
VALUES (:batch, :mode, :status, :base_model_id, :since_ts, :created_ns)
RETURNING id

-- name: get_train_task
SELECT * FROM train_tasks WHERE id = :id

-- name: set_train_task_job
UPDATE train_tasks SET job_id = :job_id WHERE id = :id

-- name: start_train_task
-- A (re)started run: a worker that died mid-training left it in a working status; the
-- new attempt takes it over rather than making a second task.
UPDATE train_tasks SET status = :status, started_ns = :now_ns, error = NULL, traceback = NULL
WHERE id = :id AND status IN (SELECT value FROM json_each(:resumable))
RETURNING id

-- name: set_train_task_status
UPDATE train_tasks SET status = :status
WHERE id = :id AND status IN (SELECT value FROM json_each(:working))
RETURNING id

-- name: finish_train_task
UPDATE train_tasks
SET status = :status, model_id = :model_id, error = :error, traceback = :traceback,
    finished_ns = :now_ns
WHERE id = :id AND status IN (SELECT value FROM json_each(:working))
RETURNING id

-- name: tasks_in_status
SELECT * FROM train_tasks WHERE status IN (SELECT value FROM json_each(:statuses)) ORDER BY id

-- name: batch_train_tasks
SELECT * FROM train_tasks WHERE batch = :batch ORDER BY id

-- embed ------------------------------------------------------------------------------------

-- name: embed_hashes
-- The stored text hashes of these refs (:refs, a JSON array) under one model.
SELECT ref, hash FROM embeddings
WHERE model = :model AND ref IN (SELECT value FROM json_each(:refs))

-- name: embed_put
INSERT INTO embeddings (model, ref, hash, dim, vector, updated_ns)
VALUES (:model, :ref, :hash, :dim, :vector, :updated_ns)
ON CONFLICT (model, ref) DO UPDATE
SET hash = excluded.hash, dim = excluded.dim, vector = excluded.vector,
    updated_ns = excluded.updated_ns

-- name: embed_get
SELECT ref, hash, dim, vector, updated_ns FROM embeddings WHERE model = :model AND ref = :ref

-- name: embed_lock
-- BEGIN IMMEDIATE already holds the write lock; nothing more to take.
SELECT 1

-- name: embed_max_ns
SELECT max(updated_ns) AS ns FROM embeddings WHERE model = :model

-- name: embed_since
-- Rows written after :since, oldest first: what a search index has not seen yet.
SELECT ref, dim, vector, updated_ns FROM embeddings
WHERE model = :model AND updated_ns > :since
ORDER BY updated_ns

-- name: embed_delete
DELETE FROM embeddings WHERE model = :model AND ref = :ref

-- name: embed_count
SELECT count(*) AS n FROM embeddings WHERE model = :model

-- sharing ----------------------------------------------------------------------------------

-- name: example_put
INSERT INTO examples (id, input, output, author, tags, created_ns, updated_ns, local,
                      src_location, src_path, backed_up_ns)
VALUES (:id, :input, :output, :author, :tags, :created_ns, :updated_ns, :local,
        :src_location, :src_path, 0)
ON CONFLICT (id) DO UPDATE
SET input = excluded.input, output = excluded.output, author = excluded.author,
    tags = excluded.tags, created_ns = excluded.created_ns, updated_ns = excluded.updated_ns,
    local = excluded.local, src_location = excluded.src_location, src_path = excluded.src_path

-- name: examples_put_many
-- Loaded examples, :rows a JSON array of {id, input, output, author, tags, created_ns,
-- updated_ns, src_location, src_path}; they replace what they win over (checked before).
INSERT INTO examples (id, input, output, author, tags, created_ns, updated_ns, local,
                      src_location, src_path, backed_up_ns)
SELECT json_extract(value, '$.id'), json_extract(value, '$.input'),
       json_extract(value, '$.output'), json_extract(value, '$.author'),
       json_extract(value, '$.tags'), json_extract(value, '$.created_ns'),
       json_extract(value, '$.updated_ns'), 0, json_extract(value, '$.src_location'),
       json_extract(value, '$.src_path'), 0
FROM json_each(:rows) WHERE true
ON CONFLICT (id) DO UPDATE
SET input = excluded.input, output = excluded.output, author = excluded.author,
    tags = excluded.tags, created_ns = excluded.created_ns, updated_ns = excluded.updated_ns,
    src_location = excluded.src_location, src_path = excluded.src_path
WHERE examples.local = 0

-- name: example_get
SELECT * FROM examples WHERE id = :id

-- name: examples_by_ids
SELECT * FROM examples WHERE id IN (SELECT value FROM json_each(:ids))

-- name: example_versions
-- What the store holds of these ids (:ids, a JSON array), to decide which loaded copy wins.
SELECT id, updated_ns, local, src_location, src_path FROM examples
WHERE id IN (SELECT value FROM json_each(:ids))

-- name: example_versions_one
SELECT id, updated_ns, local, src_location, src_path FROM examples WHERE id = :id

-- name: examples_list
-- Newest first; :author and :tag (NULL: any) filter.
SELECT * FROM examples
WHERE (:author IS NULL OR author = :author)
  AND (:tag IS NULL OR EXISTS (SELECT 1 FROM json_each(examples.tags) WHERE value = :tag))
  AND (:local IS NULL OR local = :local)
ORDER BY created_ns DESC, id
LIMIT :limit

-- name: example_delete
DELETE FROM examples WHERE id = :id RETURNING id, local

-- name: example_delete_shared
-- A loaded example none of whose files is left (examples learned here are kept).
DELETE FROM examples WHERE id = :id AND local = 0 RETURNING id

-- name: example_orphan
-- The file this example was loaded from is gone; another copy will replace it.
UPDATE examples SET src_location = NULL, src_path = NULL
WHERE id = :id AND local = 0 AND src_location = :location AND src_path = :path

-- name: example_backed_up
UPDATE examples SET backed_up_ns = :updated_ns
WHERE id = :id AND local = 1 AND backed_up_ns < :updated_ns

-- name: examples_backup_due
SELECT id FROM examples WHERE local = 1 AND backed_up_ns < updated_ns ORDER BY updated_ns

-- name: example_counts
SELECT count(*) AS total, coalesce(sum(local), 0) AS local,
       coalesce(sum(CASE WHEN local = 1 AND backed_up_ns >= updated_ns THEN 1 ELSE 0 END), 0)
           AS backed_up
FROM examples

-- name: shared_files_of
SELECT path, stamp, kind, item_id, updated_ns, error FROM shared_files WHERE location = :location

-- name: shared_files_put_many
-- :rows a JSON array of {location, path, stamp, kind, item_id, updated_ns, error}.
INSERT INTO shared_files (location, path, stamp, kind, item_id, updated_ns, error)
SELECT json_extract(value, '$.location'), json_extract(value, '$.path'),
       json_extract(value, '$.stamp'), json_extract(value, '$.kind'),
       json_extract(value, '$.item_id'), json_extract(value, '$.updated_ns'),
       json_extract(value, '$.error')
FROM json_each(:rows) WHERE true
ON CONFLICT (location, path) DO UPDATE
SET stamp = excluded.stamp, kind = excluded.kind, item_id = excluded.item_id,
    updated_ns = excluded.updated_ns, error = excluded.error

-- name: shared_file_delete
DELETE FROM shared_files WHERE location = :location AND path = :path

-- name: shared_files_forget
-- Files of a location no longer configured.
DELETE FROM shared_files WHERE location = :location

-- name: shared_file_copies
-- The other files that hold an item, newest first: one of them replaces a vanished copy.
SELECT location, path, updated_ns FROM shared_files
WHERE item_id = :item_id AND kind = :kind AND error IS NULL
ORDER BY updated_ns DESC, location, path

-- name: shared_file_counts
SELECT location, count(item_id) AS items, count(error) AS skipped, count(*) AS files
FROM shared_files GROUP BY location

-- name: shared_file_errors
SELECT location, path, error FROM shared_files WHERE error IS NOT NULL ORDER BY location, path

-- name: sharing_status_all
SELECT * FROM sharing_status ORDER BY role DESC, location

-- name: sharing_status_get
SELECT * FROM sharing_status WHERE location = :location

-- name: sharing_success
INSERT INTO sharing_status (location, role, last_success_ns, failures, next_try_ns)
VALUES (:location, :role, :now_ns, 0, 0)
ON CONFLICT (location) DO UPDATE
SET role = excluded.role, last_success_ns = excluded.last_success_ns, failures = 0,
    next_try_ns = 0

-- name: sharing_failure
-- :next_try_ns is computed by the caller from the failures so far (exponential backoff).
INSERT INTO sharing_status (location, role, last_error_ns, last_error, failures, next_try_ns)
VALUES (:location, :role, :now_ns, :error, 1, :next_try_ns)
ON CONFLICT (location) DO UPDATE
SET role = excluded.role, last_error_ns = excluded.last_error_ns,
    last_error = excluded.last_error, failures = sharing_status.failures + 1,
    next_try_ns = excluded.next_try_ns

-- name: sharing_status_forget
DELETE FROM sharing_status WHERE location = :location

-- name: shared_artifacts_all
SELECT key, version FROM shared_artifacts

-- name: shared_artifact_put
INSERT INTO shared_artifacts (key, version, path) VALUES (:key, :version, :path)
ON CONFLICT (key, version) DO NOTHING

-- name: examples_local_backed_up
-- Examples learned here whose current version was written to the backup: each should have
-- its file there (a backup location that lost files gets them again).
SELECT id FROM examples WHERE local = 1 AND backed_up_ns >= updated_ns

-- name: example_backup_lost
UPDATE examples SET backed_up_ns = 0 WHERE id = :id AND local = 1
