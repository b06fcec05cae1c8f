-- Persisted embeddings: one vector per (model, ref). hash is the sha256 of the text as it was
-- given to the embedder (same text, same model: no recomputation); vector is dim float32
-- values, little-endian. updated_ns lets each process refresh its in-memory search index with
-- only the rows written since it last looked.
CREATE TABLE embeddings (
    model      TEXT NOT NULL,
    ref        TEXT NOT NULL,
    hash       TEXT NOT NULL,
    dim        INTEGER NOT NULL,
    vector     BYTEA NOT NULL,
    updated_ns BIGINT NOT NULL,
    PRIMARY KEY (model, ref)
);

CREATE INDEX embeddings_updated ON embeddings (model, updated_ns);

-- Random float32 bytes do not compress: keep pglz from trying on every row.
ALTER TABLE embeddings ALTER COLUMN vector SET STORAGE EXTERNAL;
