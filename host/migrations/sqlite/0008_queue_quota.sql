-- Per-recipient queue quota (issue 14). A recipient's queue is bounded in messages and bytes;
-- so that a full queue tells a sender nothing about whether the recipient exists, a name
-- with no user gets a stand-in queue that fills like a real one and never drains (as a
-- real user's who never reads): its count and bytes live here, the bodies are not kept.
-- Keep in step with ../postgres/0008_queue_quota.sql.
CREATE TABLE relay_unknown_recipients (
    name      TEXT    PRIMARY KEY,
    messages  INTEGER NOT NULL,
    bytes     INTEGER NOT NULL
);
