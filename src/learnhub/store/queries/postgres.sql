-- All the SQL the PostgreSQL backend runs, by name. queries/sqlite.sql holds the same names.

-- name: lock_migrations
-- Serialises schema upgrades between processes; released when the transaction ends.
SELECT pg_advisory_xact_lock(727472)

-- name: create_migrations_table
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    INTEGER PRIMARY KEY,
    name       TEXT NOT NULL,
    applied_ns BIGINT NOT NULL
)

-- name: applied_migrations
SELECT version FROM schema_migrations

-- name: record_migration
INSERT INTO schema_migrations (version, name, applied_ns)
VALUES (%(version)s, %(name)s, %(applied_ns)s)

-- name: get_meta
SELECT value FROM meta WHERE name = %(name)s

-- name: init_meta
-- Sets a value only if it has none yet: two processes racing both read the winner's value.
INSERT INTO meta (name, value) VALUES (%(name)s, %(value)s) ON CONFLICT (name) DO NOTHING

-- name: insert_blob
INSERT INTO blobs (hash, size, data) VALUES (%(hash)s, %(size)s, %(data)s)
ON CONFLICT (hash) DO NOTHING

-- name: insert_artifact
INSERT INTO artifacts (key, version, metric, attrs, origin, base, created_ns)
VALUES (%(key)s, %(version)s, %(metric)s, %(attrs)s, %(origin)s, %(base)s, %(created_ns)s)
ON CONFLICT (key, version) DO NOTHING

-- name: insert_artifact_file
INSERT INTO artifact_files (key, version, name, blob_hash)
VALUES (%(key)s, %(version)s, %(name)s, %(blob_hash)s)

-- name: insert_artifact_attr
INSERT INTO artifact_attrs (key, version, name, value)
VALUES (%(key)s, %(version)s, %(name)s, %(value)s)

-- name: best_artifact
-- The best version of a key: lowest metric, then newest.
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries a
WHERE a.key = %(key)s
ORDER BY a.metric ASC, a.created_ns DESC, a.seq DESC
LIMIT 1

-- name: best_artifact_where
-- The best version of a key that has all :n_where attributes of :where, a JSON object of
-- name: text. The index walks the versions best first and each is checked by primary-key
-- probes, so this stops at the first match.
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries a
WHERE a.key = %(key)s
  AND %(n_where)s = (
      SELECT count(*) FROM artifact_attrs t, jsonb_each_text(CAST(%(where)s AS jsonb)) w
      WHERE t.key = a.key AND t.version = a.version AND t.name = w.key AND t.value = w.value)
ORDER BY a.metric ASC, a.created_ns DESC, a.seq DESC
LIMIT 1

-- name: attr_names
SELECT DISTINCT name FROM artifact_attrs WHERE key = %(key)s ORDER BY name

-- name: has_attr
SELECT 1 AS found FROM artifact_attrs WHERE key = %(key)s AND name = %(name)s LIMIT 1

-- name: has_key
SELECT 1 AS found FROM artifacts WHERE key = %(key)s LIMIT 1

-- name: artifact_versions
-- A key's versions, newest first.
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries
WHERE key = %(key)s
ORDER BY created_ns DESC, seq DESC

-- name: artifact_version
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries
WHERE key = %(key)s AND version = %(version)s

-- name: artifact_files
SELECT f.name, b.data
FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
WHERE f.key = %(key)s AND f.version = %(version)s
ORDER BY f.name

-- name: artifact_counts
SELECT count(DISTINCT key) AS keys, count(*) AS versions FROM artifacts

-- name: artifact_keys
SELECT key, count(*) AS versions, min(metric) AS best_metric, max(created_ns) AS updated_ns
FROM artifacts
WHERE key LIKE %(prefix)s || '%%'
GROUP BY key
ORDER BY key


-- learning: combinations -------------------------------------------------------------------

-- name: lock_learning_key
-- Serialises the stores of one key across processes, so that a store's policy decision and
-- its write are one step; released when the transaction ends.
SELECT pg_advisory_xact_lock(hashtextextended('learnhub.learning:' || %(key)s, 0))

-- name: head_artifact
-- The key's current version under the head-based policies: the last one made current.
SELECT a.version, a.metric, a.attrs, a.origin, a.base, a.created_ns, a.sizes
FROM artifact_heads h JOIN artifact_summaries a ON a.key = h.key AND a.version = h.version
WHERE h.key = %(key)s
ORDER BY h.seq DESC
LIMIT 1

-- name: head_artifact_where
-- The last version made current that has all :n_where attributes of :where.
SELECT a.version, a.metric, a.attrs, a.origin, a.base, a.created_ns, a.sizes
FROM artifact_heads h JOIN artifact_summaries a ON a.key = h.key AND a.version = h.version
WHERE h.key = %(key)s
  AND %(n_where)s = (
      SELECT count(*) FROM artifact_attrs t, jsonb_each_text(CAST(%(where)s AS jsonb)) w
      WHERE t.key = a.key AND t.version = a.version AND t.name = w.key AND t.value = w.value)
ORDER BY h.seq DESC
LIMIT 1

-- name: set_head
-- Makes :version the key's current version, unless it already is (one statement: no read
-- and write round trip on the hot path of a store).
INSERT INTO artifact_heads (key, version, created_ns)
SELECT %(key)s, %(version)s, %(created_ns)s
WHERE %(version)s IS DISTINCT FROM (SELECT version FROM artifact_heads WHERE key = %(key)s
                                    ORDER BY seq DESC LIMIT 1)

-- name: newest_artifact
SELECT version, metric, attrs, origin, base, created_ns, sizes
FROM artifact_summaries
WHERE key = %(key)s
ORDER BY created_ns DESC, seq DESC
LIMIT 1

-- name: insert_combination
INSERT INTO artifact_combinations (key, policy, base, current_version, incoming_version,
                                   result_version, detail, created_ns)
VALUES (%(key)s, %(policy)s, %(base)s, %(current_version)s, %(incoming_version)s,
        %(result_version)s, %(detail)s, %(created_ns)s)

-- name: artifact_combinations
-- A key's combinations, newest first.
SELECT policy, base, current_version, incoming_version, result_version, detail, created_ns
FROM artifact_combinations
WHERE key = %(key)s
ORDER BY seq DESC


-- Jobs ---------------------------------------------------------------------------------

-- name: insert_job
-- A live job with the same dedupe key makes this insert nothing (and return no row).
INSERT INTO jobs (queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on,
                  max_attempts, run_after_ns, timeout_s, dedupe_key, error, created_ns,
                  finished_ns)
VALUES (%(queue)s, %(task)s, %(args)s, %(priority)s, %(flow_id)s, %(flow_started_ns)s,
        %(state)s, %(waiting_on)s, %(max_attempts)s, %(run_after_ns)s, %(timeout_s)s,
        %(dedupe_key)s, %(error)s, %(created_ns)s, %(finished_ns)s)
ON CONFLICT DO NOTHING
RETURNING id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns

-- name: insert_jobs
-- Many queued jobs without parents or dedupe keys in one statement: :jobs is a JSON array
-- of {i, queue, task, args, priority, flow_id, max_attempts, run_after_ns, timeout_s},
-- inserted in the order of i.
INSERT INTO jobs (queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on,
                  max_attempts, run_after_ns, timeout_s, created_ns)
SELECT j.queue, j.task, j.args, j.priority, j.flow_id, %(now_ns)s, 'queued', 0,
       j.max_attempts, j.run_after_ns, j.timeout_s, %(now_ns)s
FROM jsonb_to_recordset(CAST(%(jobs)s AS jsonb))
     AS j(i INTEGER, queue TEXT, task TEXT, args TEXT, priority INTEGER, flow_id TEXT,
          max_attempts INTEGER, run_after_ns BIGINT, timeout_s DOUBLE PRECISION)
ORDER BY j.i
RETURNING id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns

-- name: live_job_by_dedupe_key
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs
WHERE dedupe_key = %(dedupe_key)s AND state IN ('waiting', 'queued', 'running')

-- name: insert_edge
INSERT INTO job_edges (parent_id, child_id, on_failure)
VALUES (%(parent_id)s, %(child_id)s, %(on_failure)s)

-- name: get_job
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs WHERE id = %(id)s

-- name: jobs_by_ids
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs WHERE id IN (SELECT CAST(jsonb_array_elements_text(CAST(%(ids)s AS jsonb)) AS BIGINT))

-- name: list_jobs
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs
WHERE (CAST(%(state)s AS TEXT) IS NULL OR state = %(state)s)
  AND (CAST(%(queue)s AS TEXT) IS NULL OR queue = %(queue)s)
  AND (CAST(%(flow_id)s AS TEXT) IS NULL OR flow_id = %(flow_id)s)
ORDER BY id DESC
LIMIT %(limit)s

-- name: flow_edges
SELECT e.parent_id, e.child_id, e.on_failure
FROM job_edges e JOIN jobs j ON j.id = e.child_id
WHERE j.flow_id = %(flow_id)s

-- name: job_children
SELECT e.child_id, e.on_failure FROM job_edges e WHERE e.parent_id = %(id)s

-- name: job_parents
SELECT e.parent_id, e.on_failure FROM job_edges e WHERE e.child_id = %(id)s

-- name: job_stats
SELECT queue, state, count(*) AS n FROM jobs GROUP BY queue, state

-- name: refresh_job_stats
-- Fresh statistics before a worker starts claiming: on a table that was just created or
-- bulk-loaded, PostgreSQL would otherwise sort the whole backlog at every claim instead of
-- walking jobs_claim in order.
ANALYZE jobs

-- name: claim_jobs
-- Takes up to :limit runnable jobs, best first, for one worker. On PostgreSQL, SKIP LOCKED
-- lets concurrent workers take different jobs instead of queueing behind each other.
UPDATE jobs
SET state = 'running', attempts = attempts + 1, worker_id = %(worker_id)s,
    lease_until_ns = %(lease_until_ns)s, started_ns = %(now_ns)s
WHERE id IN (
    SELECT id FROM jobs
    WHERE state = 'queued' AND run_after_ns <= %(now_ns)s
      AND (CAST(%(queues)s AS TEXT) IS NULL OR queue IN (SELECT jsonb_array_elements_text(CAST(%(queues)s AS jsonb))))
    ORDER BY priority, flow_started_ns, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
RETURNING id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns

-- name: next_run_after
-- When the earliest queued job in these queues may run (NULL: none is queued).
SELECT min(run_after_ns) AS run_after_ns FROM jobs
WHERE state = 'queued' AND (CAST(%(queues)s AS TEXT) IS NULL OR queue IN (SELECT jsonb_array_elements_text(CAST(%(queues)s AS jsonb))))

-- name: finish_job
-- Only the worker that holds the job may finish it: after a lost lease, its late result
-- finds the job requeued or taken by another worker and changes nothing.
UPDATE jobs
SET state = %(state)s, result = %(result)s, error = %(error)s, traceback = %(traceback)s,
    finished_ns = %(now_ns)s, lease_until_ns = NULL
WHERE id = %(id)s AND state = 'running' AND worker_id = %(worker_id)s
RETURNING id, task

-- name: finish_jobs
-- Records many outcomes at once, :outcomes being a JSON array of {id, state, result, error,
-- traceback}; like finish_job, only jobs this worker still holds change.
UPDATE jobs
SET state = o.state, result = o.result, error = o.error, traceback = o.traceback,
    finished_ns = %(now_ns)s, lease_until_ns = NULL
FROM jsonb_to_recordset(CAST(%(outcomes)s AS jsonb))
     AS o(id BIGINT, state TEXT, result TEXT, error TEXT, traceback TEXT)
WHERE jobs.id = o.id AND jobs.state = 'running' AND jobs.worker_id = %(worker_id)s
RETURNING jobs.id, jobs.task, jobs.state,
          EXISTS (SELECT 1 FROM job_edges e WHERE e.parent_id = jobs.id) AS has_children

-- name: requeue_job
-- A running job back to the queue after a failed attempt, to run again at :run_after_ns.
UPDATE jobs
SET state = 'queued', run_after_ns = %(run_after_ns)s, error = %(error)s,
    traceback = %(traceback)s, worker_id = NULL, lease_until_ns = NULL
WHERE id = %(id)s AND state = 'running' AND worker_id = %(worker_id)s
RETURNING id

-- name: release_child
-- A parent is done with this child: one fewer to wait on, and runnable when none is left.
UPDATE jobs
SET waiting_on = waiting_on - 1,
    state = CASE WHEN state = 'waiting' AND waiting_on = 1 THEN 'queued' ELSE state END
WHERE id = %(id)s
RETURNING state, queue

-- name: hold_join
-- A job that is not running yet gets one more parent to wait for.
UPDATE jobs
SET waiting_on = waiting_on + 1, state = 'waiting'
WHERE id = %(id)s AND state IN ('waiting', 'queued')
RETURNING id

-- name: cancel_job
UPDATE jobs
SET state = 'cancelled', error = %(error)s, finished_ns = %(now_ns)s, lease_until_ns = NULL
WHERE id = %(id)s AND state IN ('waiting', 'queued', 'running')
RETURNING id, task

-- name: retry_job
UPDATE jobs
SET state = CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'queued' END, attempts = 0,
    run_after_ns = %(now_ns)s, error = NULL, traceback = NULL, result = NULL,
    worker_id = NULL, started_ns = NULL, finished_ns = NULL
WHERE id = %(id)s AND state IN ('failed', 'cancelled')
RETURNING id

-- name: revive_cancelled
-- Jobs cancelled because job :id failed wait again, now that it is retried.
UPDATE jobs
SET state = CASE WHEN waiting_on > 0 THEN 'waiting' ELSE 'queued' END, error = NULL,
    finished_ns = NULL
WHERE state = 'cancelled' AND error LIKE %(prefix)s
RETURNING id, task

-- name: renew_leases
UPDATE jobs SET lease_until_ns = %(lease_until_ns)s
WHERE worker_id = %(worker_id)s AND state = 'running'

-- name: renew_lease
UPDATE jobs SET lease_until_ns = %(lease_until_ns)s
WHERE id = %(id)s AND worker_id = %(worker_id)s AND state = 'running'
RETURNING id

-- name: lost_jobs
-- Running jobs whose worker stopped renewing the lease: it died. (A live worker enforces
-- timeouts itself, from the moment a job really starts.)
SELECT id, queue, task, args, priority, flow_id, flow_started_ns, state, waiting_on, attempts, max_attempts, run_after_ns, timeout_s, lease_until_ns, worker_id, dedupe_key, result, error, traceback, created_ns, started_ns, finished_ns FROM jobs
WHERE state = 'running'
  AND lease_until_ns < %(now_ns)s
    FOR UPDATE SKIP LOCKED

-- name: prune_jobs
DELETE FROM jobs WHERE state = 'succeeded' AND finished_ns < %(before_ns)s

-- name: notify_jobs
SELECT pg_notify('learnhub_jobs', %(queue)s)

-- Schedules ----------------------------------------------------------------------------

-- name: upsert_schedule
INSERT INTO schedules (name, task, args, queue, priority, every_s, cron, next_ns)
VALUES (%(name)s, %(task)s, %(args)s, %(queue)s, %(priority)s, %(every_s)s, %(cron)s, %(next_ns)s)
ON CONFLICT (name) DO UPDATE
SET task = excluded.task, args = excluded.args, queue = excluded.queue,
    priority = excluded.priority, every_s = excluded.every_s, cron = excluded.cron,
    next_ns = CASE WHEN schedules.every_s IS NOT DISTINCT FROM excluded.every_s
                    AND schedules.cron IS NOT DISTINCT FROM excluded.cron
                   THEN schedules.next_ns ELSE excluded.next_ns END

-- name: due_schedules
SELECT name, task, args, queue, priority, every_s, cron, next_ns FROM schedules
WHERE next_ns <= %(now_ns)s

-- name: advance_schedule
-- Compare-and-set: of several hubs that saw the same tick, one moves it and enqueues.
UPDATE schedules SET next_ns = %(new_next_ns)s
WHERE name = %(name)s AND next_ns = %(old_next_ns)s
RETURNING name

-- name: list_schedules
SELECT name, task, args, queue, priority, every_s, cron, next_ns FROM schedules ORDER BY name

-- peers ------------------------------------------------------------------------------------

-- name: peers_all
SELECT address, node_id, source, added_ns, last_seen_ns, last_exchange_ns, last_error, failures
FROM peers ORDER BY address

-- name: peer_add
-- By hand: an address learned before becomes an added one.
INSERT INTO peers (address, node_id, source, added_ns) VALUES (%(address)s, NULL, %(source)s, %(now_ns)s)
ON CONFLICT (address) DO UPDATE SET source = excluded.source

-- name: peer_learn
-- A peer that said where it listens; an address added by hand keeps its source.
INSERT INTO peers (address, node_id, source, added_ns, last_seen_ns)
VALUES (%(address)s, %(node_id)s, %(source)s, %(now_ns)s, %(now_ns)s)
ON CONFLICT (address) DO UPDATE SET node_id = excluded.node_id, last_seen_ns = excluded.last_seen_ns

-- name: peer_remove
DELETE FROM peers WHERE address = %(address)s

-- name: peer_seen
UPDATE peers SET node_id = %(node_id)s, last_seen_ns = %(now_ns)s, failures = 0, last_error = NULL
WHERE address = %(address)s

-- name: peer_exchanged
UPDATE peers SET last_exchange_ns = %(now_ns)s WHERE address = %(address)s

-- name: peer_failed
UPDATE peers SET failures = failures + 1, last_error = %(error)s WHERE address = %(address)s

-- name: peer_trust_put
INSERT INTO peer_trust (node_id, public_key, added_ns) VALUES (%(node_id)s, %(public_key)s, %(now_ns)s)
ON CONFLICT (node_id) DO UPDATE SET public_key = excluded.public_key

-- name: peer_trust_all
SELECT node_id, public_key, added_ns FROM peer_trust ORDER BY node_id

-- name: peer_trust_remove
DELETE FROM peer_trust WHERE node_id = %(node_id)s

-- name: peer_want_put
INSERT INTO peer_wants (node_id, key, created_ns) VALUES (%(node_id)s, %(key)s, %(now_ns)s)
ON CONFLICT (node_id, key) DO NOTHING

-- name: peer_wants_for
SELECT node_id FROM peer_wants WHERE key = %(key)s ORDER BY node_id

-- name: peer_want_counts
SELECT node_id, count(*) AS wants FROM peer_wants GROUP BY node_id

-- name: peer_wants_by_key
SELECT key, count(*) AS wants FROM peer_wants GROUP BY key

-- name: announcement_put
INSERT INTO peer_announcements (node_id, key, version, metric, announced_ns, received_ns, address)
VALUES (%(node_id)s, %(key)s, %(version)s, %(metric)s, %(announced_ns)s, %(received_ns)s, %(address)s)
ON CONFLICT (node_id, key) DO UPDATE
SET version = excluded.version, metric = excluded.metric, announced_ns = excluded.announced_ns,
    received_ns = excluded.received_ns, address = excluded.address

-- name: announcements_for
-- Who has the key, best first, then the most recent.
SELECT node_id, version, metric, announced_ns, received_ns, address
FROM peer_announcements WHERE key = %(key)s
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
WHERE seq > %(after)s ORDER BY seq LIMIT %(limit)s

-- name: peers_file_hashes
-- A version's files as a transfer manifest: names, content hashes and sizes, no bytes.
SELECT f.name, f.blob_hash, b.size
FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
WHERE f.key = %(key)s AND f.version = %(version)s
ORDER BY f.name

-- name: peers_file_part
-- One part of one file of a version: substring of an uncompressed TOASTed value reads only
-- the chunks it covers (SQLite reads its parts with incremental blob I/O instead).
SELECT NULL::bigint AS blob_rowid, b.size,
       substring(b.data FROM %(offset)s::int + 1 FOR %(count)s::int) AS data
FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
WHERE f.key = %(key)s AND f.version = %(version)s AND f.name = %(name)s

-- name: peers_digest
-- Each key's best version, in key order after the given key: a page of this hub's digest.
SELECT key, version, metric, created_ns
FROM (SELECT key, version, metric, created_ns,
             row_number() OVER (PARTITION BY key
                                ORDER BY metric ASC, created_ns DESC, seq DESC) AS rank
      FROM artifacts WHERE key > %(after)s) best
WHERE rank = 1
ORDER BY key
LIMIT %(limit)s


-- ai keyspace ------------------------------------------------------------------------------

-- name: ai_get
SELECT key, type, meta, blob, updated_ns FROM ai_keys WHERE key = %(key)s

-- name: ai_get_many
-- Tensors with their bytes, models and scripts without (the caller caches them by updated_ns).
SELECT key, type, meta, CASE WHEN type = 'tensor' THEN blob END AS blob, updated_ns
FROM ai_keys WHERE key = ANY(SELECT jsonb_array_elements_text(CAST(%(keys)s AS jsonb)))

-- name: ai_put
INSERT INTO ai_keys (key, type, meta, blob, updated_ns)
VALUES (%(key)s, %(type)s, %(meta)s, %(blob)s, %(updated_ns)s)
ON CONFLICT (key) DO UPDATE
SET type = excluded.type, meta = excluded.meta, blob = excluded.blob, updated_ns = excluded.updated_ns

-- name: ai_delete
DELETE FROM ai_keys WHERE key = %(key)s

-- name: ai_delete_typed
DELETE FROM ai_keys WHERE key = %(key)s AND type = %(type)s

-- name: ai_keys
SELECT key, type, meta FROM ai_keys WHERE (CAST(%(type)s AS TEXT) IS NULL OR type = %(type)s) ORDER BY key

-- name: ai_flush
DELETE FROM ai_keys

-- continuous: samples ------------------------------------------------------------------------

-- name: sample_batch
SELECT kind, name, schema, last_ts, created_ns FROM sample_batches WHERE kind = %(kind)s AND name = %(name)s

-- name: create_sample_batch
INSERT INTO sample_batches (kind, name, schema, last_ts, created_ns)
VALUES (%(kind)s, %(name)s, %(schema)s, 0, %(created_ns)s)
ON CONFLICT (kind, name) DO NOTHING

-- name: reserve_sample_ts
-- :n timestamps for a write, above every one given out before and not before :now_ns;
-- returns the last. The row lock serialises concurrent writers, in any process.
UPDATE sample_batches SET last_ts = GREATEST(last_ts + %(n)s, %(now_ns)s + %(n)s - 1)
WHERE kind = %(kind)s AND name = %(name)s
RETURNING last_ts

-- name: raise_sample_ts
-- User-given timestamps up to :max_ts: later automatic ones start above them.
UPDATE sample_batches SET last_ts = GREATEST(last_ts, %(max_ts)s)
WHERE kind = %(kind)s AND name = %(name)s

-- name: sample_batches
SELECT b.kind, b.name, b.schema, b.created_ns,
       coalesce(sum(c.rows), 0) AS rows, coalesce(sum(c.train_rows), 0) AS train_rows,
       min(c.first_ts) AS first_ts, max(c.last_ts) AS last_ts
FROM sample_batches b
LEFT JOIN sample_chunks c ON c.kind = b.kind AND c.batch = b.name
WHERE (CAST(%(kind)s AS TEXT) IS NULL OR b.kind = %(kind)s)
GROUP BY b.kind, b.name ORDER BY b.kind, b.name

-- name: insert_sample_chunk
INSERT INTO sample_chunks (kind, batch, first_ts, last_ts, rows, train_rows, ts, is_train, data)
VALUES (%(kind)s, %(batch)s, %(first_ts)s, %(last_ts)s, %(rows)s, %(train_rows)s, %(ts)s, %(is_train)s, %(data)s)

-- name: count_whole_chunks
-- Rows of the chunks that lie entirely at or after :since.
SELECT coalesce(sum(rows), 0) AS rows, coalesce(sum(train_rows), 0) AS train_rows
FROM sample_chunks WHERE kind = %(kind)s AND batch = %(batch)s AND first_ts >= %(since)s

-- name: straddling_chunks
-- Chunks that begin before :since and end at or after it: counted row by row.
SELECT ts, is_train FROM sample_chunks
WHERE kind = %(kind)s AND batch = %(batch)s AND first_ts < %(since)s AND last_ts >= %(since)s

-- name: sample_chunks
-- Chunks with rows in [:since, :until], oldest first.
SELECT first_ts, last_ts, rows, ts, is_train, data FROM sample_chunks
WHERE kind = %(kind)s AND batch = %(batch)s AND last_ts >= %(since)s AND first_ts <= %(until)s
ORDER BY first_ts, id

-- name: chunk_timestamps
-- The ts arrays of chunks overlapping [:since, :until], to find duplicate timestamps.
SELECT ts FROM sample_chunks
WHERE kind = %(kind)s AND batch = %(batch)s AND last_ts >= %(since)s AND first_ts <= %(until)s

-- continuous: models and training tasks ---------------------------------------------------

-- name: insert_model
INSERT INTO models (batch, version, status, metrics, mode, data_from_ts, data_to_ts, task_id, created_ns)
VALUES (%(batch)s, %(version)s, %(status)s, %(metrics)s, %(mode)s, %(data_from_ts)s, %(data_to_ts)s, %(task_id)s, %(created_ns)s)
RETURNING id

-- name: get_model
SELECT * FROM models WHERE id = %(id)s

-- name: latest_model
-- The newest model of a batch whose status is one of :statuses (a JSON array).
SELECT * FROM models
WHERE batch = %(batch)s AND status IN (SELECT jsonb_array_elements_text(CAST(%(statuses)s AS jsonb)))
ORDER BY id DESC LIMIT 1

-- name: list_models
SELECT * FROM models WHERE batch = %(batch)s ORDER BY id

-- name: set_model_status
UPDATE models SET status = %(status)s WHERE id = %(id)s RETURNING id

-- name: insert_train_task
INSERT INTO train_tasks (batch, mode, status, base_model_id, since_ts, created_ns)
VALUES (%(batch)s, %(mode)s, %(status)s, %(base_model_id)s, %(since_ts)s, %(created_ns)s)
RETURNING id

-- name: get_train_task
SELECT * FROM train_tasks WHERE id = %(id)s

-- name: set_train_task_job
UPDATE train_tasks SET job_id = %(job_id)s WHERE id = %(id)s

-- name: start_train_task
-- A (re)started run: a worker that died mid-training left it in a working status; the
-- new attempt takes it over rather than making a second task.
UPDATE train_tasks SET status = %(status)s, started_ns = %(now_ns)s, error = NULL, traceback = NULL
WHERE id = %(id)s AND status IN (SELECT jsonb_array_elements_text(CAST(%(resumable)s AS jsonb)))
RETURNING id

-- name: set_train_task_status
UPDATE train_tasks SET status = %(status)s
WHERE id = %(id)s AND status IN (SELECT jsonb_array_elements_text(CAST(%(working)s AS jsonb)))
RETURNING id

-- name: finish_train_task
UPDATE train_tasks
SET status = %(status)s, model_id = %(model_id)s, error = %(error)s, traceback = %(traceback)s,
    finished_ns = %(now_ns)s
WHERE id = %(id)s AND status IN (SELECT jsonb_array_elements_text(CAST(%(working)s AS jsonb)))
RETURNING id

-- name: tasks_in_status
SELECT * FROM train_tasks WHERE status IN (SELECT jsonb_array_elements_text(CAST(%(statuses)s AS jsonb))) ORDER BY id

-- name: batch_train_tasks
SELECT * FROM train_tasks WHERE batch = %(batch)s ORDER BY id

-- embed ------------------------------------------------------------------------------------

-- name: embed_hashes
-- The stored text hashes of these refs (:refs, a JSON array) under one model.
SELECT ref, hash FROM embeddings
WHERE model = %(model)s AND ref IN (SELECT jsonb_array_elements_text(CAST(%(refs)s AS jsonb)))

-- name: embed_put
INSERT INTO embeddings (model, ref, hash, dim, vector, updated_ns)
VALUES (%(model)s, %(ref)s, %(hash)s, %(dim)s, %(vector)s, %(updated_ns)s)
ON CONFLICT (model, ref) DO UPDATE
SET hash = excluded.hash, dim = excluded.dim, vector = excluded.vector,
    updated_ns = excluded.updated_ns

-- name: embed_get
SELECT ref, hash, dim, vector, updated_ns FROM embeddings
WHERE model = %(model)s AND ref = %(ref)s

-- name: embed_lock
-- Serialises embedding writers, so updated_ns grows in commit order (a reader that saw
-- updated_ns T never misses a row committed later with a smaller one).
SELECT pg_advisory_xact_lock(727473)

-- name: embed_max_ns
SELECT max(updated_ns) AS ns FROM embeddings WHERE model = %(model)s

-- name: embed_since
-- Rows written after :since, oldest first: what a search index has not seen yet.
SELECT ref, dim, vector, updated_ns FROM embeddings
WHERE model = %(model)s AND updated_ns > %(since)s
ORDER BY updated_ns

-- name: embed_delete
DELETE FROM embeddings WHERE model = %(model)s AND ref = %(ref)s

-- name: embed_count
SELECT count(*) AS n FROM embeddings WHERE model = %(model)s

-- sharing ----------------------------------------------------------------------------------

-- name: example_put
INSERT INTO examples (id, input, output, author, tags, created_ns, updated_ns, local,
                      src_location, src_path, backed_up_ns)
VALUES (%(id)s, %(input)s, %(output)s, %(author)s, %(tags)s, %(created_ns)s, %(updated_ns)s,
        %(local)s, %(src_location)s, %(src_path)s, 0)
ON CONFLICT (id) DO UPDATE
SET input = excluded.input, output = excluded.output, author = excluded.author,
    tags = excluded.tags, created_ns = excluded.created_ns, updated_ns = excluded.updated_ns,
    local = excluded.local, src_location = excluded.src_location, src_path = excluded.src_path

-- name: examples_put_many
-- Loaded examples, :rows a JSON array of {id, input, output, author, tags, created_ns,
-- updated_ns, src_location, src_path}; they replace what they win over (checked before).
INSERT INTO examples (id, input, output, author, tags, created_ns, updated_ns, local,
                      src_location, src_path, backed_up_ns)
SELECT r.id, r.input, r.output, r.author, r.tags, r.created_ns, r.updated_ns, 0,
       r.src_location, r.src_path, 0
FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb))
     AS r(id TEXT, input TEXT, output TEXT, author TEXT, tags TEXT, created_ns BIGINT,
          updated_ns BIGINT, src_location TEXT, src_path TEXT)
ON CONFLICT (id) DO UPDATE
SET input = excluded.input, output = excluded.output, author = excluded.author,
    tags = excluded.tags, created_ns = excluded.created_ns, updated_ns = excluded.updated_ns,
    src_location = excluded.src_location, src_path = excluded.src_path
WHERE examples.local = 0

-- name: example_get
SELECT * FROM examples WHERE id = %(id)s

-- name: examples_by_ids
SELECT * FROM examples WHERE id IN (SELECT jsonb_array_elements_text(CAST(%(ids)s AS jsonb)))

-- name: example_versions
-- What the store holds of these ids (:ids, a JSON array), to decide which loaded copy wins.
SELECT id, updated_ns, local, src_location, src_path FROM examples
WHERE id IN (SELECT jsonb_array_elements_text(CAST(%(ids)s AS jsonb)))

-- name: example_versions_one
SELECT id, updated_ns, local, src_location, src_path FROM examples WHERE id = %(id)s

-- name: examples_list
-- Newest first; :author and :tag (NULL: any) filter.
SELECT * FROM examples
WHERE (CAST(%(author)s AS TEXT) IS NULL OR author = %(author)s)
  AND (CAST(%(tag)s AS TEXT) IS NULL
       OR CAST(tags AS jsonb) ? CAST(%(tag)s AS TEXT))
  AND (CAST(%(local)s AS INTEGER) IS NULL OR local = %(local)s)
ORDER BY created_ns DESC, id
LIMIT %(limit)s

-- name: example_delete
DELETE FROM examples WHERE id = %(id)s RETURNING id, local

-- name: example_delete_shared
-- A loaded example none of whose files is left (examples learned here are kept).
DELETE FROM examples WHERE id = %(id)s AND local = 0 RETURNING id

-- name: example_orphan
-- The file this example was loaded from is gone; another copy will replace it.
UPDATE examples SET src_location = NULL, src_path = NULL
WHERE id = %(id)s AND local = 0 AND src_location = %(location)s AND src_path = %(path)s

-- name: example_backed_up
UPDATE examples SET backed_up_ns = %(updated_ns)s
WHERE id = %(id)s AND local = 1 AND backed_up_ns < %(updated_ns)s

-- name: examples_backup_due
SELECT id FROM examples WHERE local = 1 AND backed_up_ns < updated_ns ORDER BY updated_ns

-- name: example_counts
SELECT count(*) AS total, coalesce(sum(local), 0) AS local,
       coalesce(sum(CASE WHEN local = 1 AND backed_up_ns >= updated_ns THEN 1 ELSE 0 END), 0)
           AS backed_up
FROM examples

-- name: shared_files_of
SELECT path, stamp, kind, item_id, updated_ns, error FROM shared_files
WHERE location = %(location)s

-- name: shared_files_put_many
-- :rows a JSON array of {location, path, stamp, kind, item_id, updated_ns, error}.
INSERT INTO shared_files (location, path, stamp, kind, item_id, updated_ns, error)
SELECT r.location, r.path, r.stamp, r.kind, r.item_id, r.updated_ns, r.error
FROM jsonb_to_recordset(CAST(%(rows)s AS jsonb))
     AS r(location TEXT, path TEXT, stamp TEXT, kind TEXT, item_id TEXT, updated_ns BIGINT,
          error TEXT)
ON CONFLICT (location, path) DO UPDATE
SET stamp = excluded.stamp, kind = excluded.kind, item_id = excluded.item_id,
    updated_ns = excluded.updated_ns, error = excluded.error

-- name: shared_file_delete
DELETE FROM shared_files WHERE location = %(location)s AND path = %(path)s

-- name: shared_files_forget
-- Files of a location no longer configured.
DELETE FROM shared_files WHERE location = %(location)s

-- name: shared_file_copies
-- The other files that hold an item, newest first: one of them replaces a vanished copy.
SELECT location, path, updated_ns FROM shared_files
WHERE item_id = %(item_id)s AND kind = %(kind)s AND error IS NULL
ORDER BY updated_ns DESC, location, path

-- name: shared_file_counts
SELECT location, count(item_id) AS items, count(error) AS skipped, count(*) AS files
FROM shared_files GROUP BY location

-- name: shared_file_errors
SELECT location, path, error FROM shared_files WHERE error IS NOT NULL ORDER BY location, path

-- name: sharing_status_all
SELECT * FROM sharing_status ORDER BY role DESC, location

-- name: sharing_status_get
SELECT * FROM sharing_status WHERE location = %(location)s

-- name: sharing_success
INSERT INTO sharing_status (location, role, last_success_ns, failures, next_try_ns)
VALUES (%(location)s, %(role)s, %(now_ns)s, 0, 0)
ON CONFLICT (location) DO UPDATE
SET role = excluded.role, last_success_ns = excluded.last_success_ns, failures = 0,
    next_try_ns = 0

-- name: sharing_failure
-- :next_try_ns is computed by the caller from the failures so far (exponential backoff).
INSERT INTO sharing_status (location, role, last_error_ns, last_error, failures, next_try_ns)
VALUES (%(location)s, %(role)s, %(now_ns)s, %(error)s, 1, %(next_try_ns)s)
ON CONFLICT (location) DO UPDATE
SET role = excluded.role, last_error_ns = excluded.last_error_ns,
    last_error = excluded.last_error, failures = sharing_status.failures + 1,
    next_try_ns = excluded.next_try_ns

-- name: sharing_status_forget
DELETE FROM sharing_status WHERE location = %(location)s

-- name: shared_artifacts_all
SELECT key, version FROM shared_artifacts

-- name: shared_artifact_put
INSERT INTO shared_artifacts (key, version, path) VALUES (%(key)s, %(version)s, %(path)s)
ON CONFLICT (key, version) DO NOTHING

-- name: examples_local_backed_up
-- Examples learned here whose current version was written to the backup: each should have
-- its file there (a backup location that lost files gets them again).
SELECT id FROM examples WHERE local = 1 AND backed_up_ns >= updated_ns

-- name: example_backup_lost
UPDATE examples SET backed_up_ns = 0 WHERE id = %(id)s AND local = 1
