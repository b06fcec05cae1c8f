-- Learning data. An artifact version is immutable; a key keeps its whole history.
-- File bytes are stored once per content hash, so versions that share a file share its bytes.
CREATE TABLE blobs (
    hash TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    data BLOB NOT NULL
);

CREATE TABLE artifacts (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    version    TEXT NOT NULL,
    metric     REAL NOT NULL,
    attrs      TEXT NOT NULL,
    origin     TEXT NOT NULL,
    base       TEXT,
    created_ns INTEGER NOT NULL,
    UNIQUE (key, version)
);

CREATE INDEX artifacts_best ON artifacts (key, metric, created_ns DESC);

CREATE TABLE artifact_files (
    key       TEXT NOT NULL,
    version   TEXT NOT NULL,
    name      TEXT NOT NULL,
    blob_hash TEXT NOT NULL REFERENCES blobs (hash),
    PRIMARY KEY (key, version, name),
    FOREIGN KEY (key, version) REFERENCES artifacts (key, version)
);
