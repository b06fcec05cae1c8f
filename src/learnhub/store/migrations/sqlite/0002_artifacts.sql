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

-- Walks a key's versions best first, so a lookup stops at the first that matches.
CREATE INDEX artifacts_best ON artifacts (key, metric, created_ns DESC, seq DESC);

-- Attributes again, one row each, as the text they have on the wire: what WHERE matches.
CREATE TABLE artifact_attrs (
    key     TEXT NOT NULL,
    version TEXT NOT NULL,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (key, version, name),
    FOREIGN KEY (key, version) REFERENCES artifacts (key, version)
);

CREATE INDEX artifact_attrs_names ON artifact_attrs (key, name);

CREATE TABLE artifact_files (
    key       TEXT NOT NULL,
    version   TEXT NOT NULL,
    name      TEXT NOT NULL,
    blob_hash TEXT NOT NULL REFERENCES blobs (hash),
    PRIMARY KEY (key, version, name),
    FOREIGN KEY (key, version) REFERENCES artifacts (key, version)
);

-- Each version with the sizes of its files, as a JSON object: what listings show.
CREATE VIEW artifact_summaries AS
SELECT a.*,
       (SELECT json_group_object(f.name, b.size)
          FROM artifact_files f JOIN blobs b ON b.hash = f.blob_hash
         WHERE f.key = a.key AND f.version = a.version) AS sizes
FROM artifacts a;
