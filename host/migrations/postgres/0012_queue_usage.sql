-- Issue 15: a recipient's queue usage (messages, bytes sealed at rest) kept as counters, so
-- the quota check of every accepted message reads one row instead of counting the queue
-- (which grew with the queue: up to `max_queue_messages` rows per message). A trigger keeps
-- the counters in step with every insert and delete of `relay_queue` (accept, ack, dead
-- letters, a user's removal), whatever code path makes it. Keep in step with
-- ../sqlite/0011_queue_usage.sql.
CREATE TABLE relay_queue_usage (
    recipient_id BIGINT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    messages     BIGINT NOT NULL,
    bytes        BIGINT NOT NULL
);

INSERT INTO relay_queue_usage (recipient_id, messages, bytes)
    SELECT recipient_id, COUNT(*), COALESCE(SUM(LENGTH(body)), 0)
    FROM relay_queue GROUP BY recipient_id;

CREATE FUNCTION relay_queue_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay_queue_usage (recipient_id, messages, bytes)
            VALUES (NEW.recipient_id, 1, LENGTH(NEW.body))
            ON CONFLICT (recipient_id) DO UPDATE
            SET messages = relay_queue_usage.messages + 1,
                bytes = relay_queue_usage.bytes + EXCLUDED.bytes;
        RETURN NEW;
    END IF;
    UPDATE relay_queue_usage
        SET messages = messages - 1, bytes = bytes - LENGTH(OLD.body)
        WHERE recipient_id = OLD.recipient_id;
    RETURN OLD;
END
$$;

CREATE TRIGGER relay_queue_usage AFTER INSERT OR DELETE ON relay_queue
    FOR EACH ROW EXECUTE FUNCTION relay_queue_usage_count();
