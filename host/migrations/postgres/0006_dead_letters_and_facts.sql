-- Queued messages whose sealed-at-rest body does not open under the queue key (a corrupted or
-- tampered row): moved here by the inbox instead of blocking the messages queued after them.
-- Kept, not deleted: nothing is lost, and an operator can inspect them. Keep in step with
-- ../sqlite/0006_dead_letters_and_facts.sql.
CREATE TABLE relay_dead_letters (
    id           BIGINT PRIMARY KEY,          -- the id it had in relay_queue
    recipient    TEXT   NOT NULL,
    body         BYTEA  NOT NULL,
    created_at   BIGINT NOT NULL,
    moved_at     BIGINT NOT NULL
);

-- Facts about this database that every host using it must agree with, claimed by the first
-- one (e.g. `queue_key_id`: which keys/queue.key seals its messages).
CREATE TABLE host_facts (
    name  TEXT PRIMARY KEY,
    value BYTEA NOT NULL
);
