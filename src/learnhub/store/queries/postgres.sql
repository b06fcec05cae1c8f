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
