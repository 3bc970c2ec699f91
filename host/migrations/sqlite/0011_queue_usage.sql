-- Issue 15: a recipient's queue usage (messages, bytes sealed at rest) kept as counters, so
-- the quota check of every accepted message reads one row instead of counting the queue
-- (which grew with the queue: up to `max_queue_messages` rows per message). Triggers keep the
-- counters in step with every insert and delete of `relay_queue` (accept, ack, dead letters,
-- a user's removal), whatever code path makes it. Keep in step with
-- ../postgres/0012_queue_usage.sql.
CREATE TABLE relay_queue_usage (
    recipient_id INTEGER PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    messages     INTEGER NOT NULL,
    bytes        INTEGER NOT NULL
);

INSERT INTO relay_queue_usage (recipient_id, messages, bytes)
    SELECT recipient_id, COUNT(*), COALESCE(SUM(LENGTH(body)), 0)
    FROM relay_queue GROUP BY recipient_id;

CREATE TRIGGER relay_queue_usage_insert AFTER INSERT ON relay_queue
BEGIN
    INSERT INTO relay_queue_usage (recipient_id, messages, bytes)
        VALUES (NEW.recipient_id, 1, LENGTH(NEW.body))
        ON CONFLICT (recipient_id) DO UPDATE
        SET messages = messages + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER relay_queue_usage_delete AFTER DELETE ON relay_queue
BEGIN
    UPDATE relay_queue_usage
        SET messages = messages - 1, bytes = bytes - LENGTH(OLD.body)
        WHERE recipient_id = OLD.recipient_id;
END;
