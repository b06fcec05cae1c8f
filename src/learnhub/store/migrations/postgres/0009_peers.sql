-- Peers: what the hub-to-hub link remembers across restarts.
--
-- peers: every peer link address this hub knows: added by hand (`learnhub peers add`),
-- learned (the peer connected here and said where it listens) or found in the DHT. Static
-- peers from the config are not stored: the config is their record.
CREATE TABLE peers (
    address          TEXT PRIMARY KEY,
    node_id          TEXT,
    source           TEXT NOT NULL,
    added_ns         BIGINT NOT NULL,
    last_seen_ns     BIGINT,
    last_exchange_ns BIGINT,
    last_error       TEXT,
    failures         INTEGER NOT NULL DEFAULT 0
);

-- Node ids trusted by key (`learnhub peers trust`), beside those in the config.
CREATE TABLE peer_trust (
    node_id    TEXT PRIMARY KEY,
    public_key TEXT NOT NULL,
    added_ns   BIGINT NOT NULL
);

-- Which peer asked to be told about which key (PEER.WANT): they are offered its new versions.
CREATE TABLE peer_wants (
    node_id    TEXT NOT NULL,
    key        TEXT NOT NULL,
    created_ns BIGINT NOT NULL,
    PRIMARY KEY (node_id, key)
);

CREATE INDEX peer_wants_key ON peer_wants (key);

-- The table of announcements: the last version each peer announced of each key (PEER.HAVE,
-- PEER.OFFER, digests), its metric, when the peer made it and when it was heard here. It
-- decides whether a fetch is worth it, and whom to ask first.
CREATE TABLE peer_announcements (
    node_id      TEXT NOT NULL,
    key          TEXT NOT NULL,
    version      TEXT NOT NULL,
    metric       DOUBLE PRECISION NOT NULL,
    announced_ns BIGINT NOT NULL,
    received_ns  BIGINT NOT NULL,
    address      TEXT,
    PRIMARY KEY (node_id, key)
);

CREATE INDEX peer_announcements_key ON peer_announcements (key, metric);
