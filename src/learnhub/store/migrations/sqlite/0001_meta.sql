-- Facts about this database itself, such as the node id of the hub that owns it.
CREATE TABLE meta (
    name  TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
