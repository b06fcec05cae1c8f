-- Learning data: which version is each key's current one, and how concurrent stores of a
-- key were combined. Both tables only grow: the history of a key is never rewritten.
--
-- artifact_heads: every change of a key's current version, in order; the last row is the
-- version a lookup returns under the newest / smallest / largest / merge policies (under
-- best it is kept equal to the lowest metric, so that a policy change starts from what
-- lookups returned).
CREATE TABLE artifact_heads (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    version    TEXT NOT NULL,
    created_ns INTEGER NOT NULL,
    FOREIGN KEY (key, version) REFERENCES artifacts (key, version)
);

CREATE INDEX artifact_heads_key ON artifact_heads (key, seq);

-- artifact_combinations: a store that found its key moved on since its base. Which versions
-- went in (base: what the writer started from; current: the key's current version when the
-- store arrived; incoming: what the writer stored) and which came out (result).
CREATE TABLE artifact_combinations (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    key        TEXT NOT NULL,
    policy     TEXT NOT NULL,
    base       TEXT,
    current_version  TEXT NOT NULL,
    incoming_version TEXT NOT NULL,
    result_version   TEXT NOT NULL,
    detail     TEXT,
    created_ns INTEGER NOT NULL
);

CREATE INDEX artifact_combinations_key ON artifact_combinations (key, seq);

-- Keys stored before: their current version is the best one, what lookups returned.
INSERT INTO artifact_heads (key, version, created_ns)
SELECT key, version, created_ns
FROM (SELECT key, version, created_ns,
             row_number() OVER (PARTITION BY key
                                ORDER BY metric ASC, created_ns DESC, seq DESC) AS rank
      FROM artifacts)
WHERE rank = 1;
