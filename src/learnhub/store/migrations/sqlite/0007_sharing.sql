-- Sharing: learned examples, the files they were loaded from, and each location's health.
--
-- examples: one row per example id. local = 1 for examples learned here (the hub backs them
-- up and keeps them when no file holds them); the others came from src_location/src_path and
-- are dropped when no file holds them any more. backed_up_ns is the updated_ns of the version
-- last written to the backup (< updated_ns: a backup is due).
CREATE TABLE examples (
    id           TEXT PRIMARY KEY,
    input        TEXT NOT NULL,
    output       TEXT NOT NULL,
    author       TEXT NOT NULL,
    tags         TEXT NOT NULL,
    created_ns   INTEGER NOT NULL,
    updated_ns   INTEGER NOT NULL,
    local        INTEGER NOT NULL,
    src_location TEXT,
    src_path     TEXT,
    backed_up_ns INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX examples_created ON examples (created_ns);

-- What each poll saw: a file's stamp (etag, or mtime + size) and what it held. A file whose
-- stamp is unchanged is not read again; error says why a file was skipped (garbage).
CREATE TABLE shared_files (
    location   TEXT NOT NULL,
    path       TEXT NOT NULL,
    stamp      TEXT NOT NULL,
    kind       TEXT NOT NULL,
    item_id    TEXT,
    updated_ns INTEGER,
    error      TEXT,
    PRIMARY KEY (location, path)
);

CREATE INDEX shared_files_item ON shared_files (item_id);

-- Each location's health, for `learnhub sharing status` and backoff between failed polls.
CREATE TABLE sharing_status (
    location        TEXT PRIMARY KEY,
    role            TEXT NOT NULL,
    last_success_ns INTEGER,
    last_error_ns   INTEGER,
    last_error      TEXT,
    failures        INTEGER NOT NULL DEFAULT 0,
    next_try_ns     INTEGER NOT NULL DEFAULT 0
);

-- Artifact versions written to the backup location (artifacts are immutable: once is enough).
CREATE TABLE shared_artifacts (
    key     TEXT NOT NULL,
    version TEXT NOT NULL,
    path    TEXT NOT NULL,
    PRIMARY KEY (key, version)
);
