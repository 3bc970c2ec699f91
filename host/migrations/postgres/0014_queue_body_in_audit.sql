-- Issue 15: a client's message is written once. Its queue entry no longer holds a second copy
-- of the body: it names the message's audit record (which holds the ciphertext as received)
-- and holds, sealed at rest under keys/queue.key, the message key that opens it.
-- `audit_session`/`audit_seq` name the record (NULL: an entry that holds its body, as every
-- entry did before this migration); `counted` is what the entry counts against the
-- recipient's quota (NULL: the length of `body`). The audit log is append-only, so the
-- record outlives the entry. Keep in step with ../sqlite/0013_queue_body_in_audit.sql.
ALTER TABLE relay_queue ADD COLUMN audit_session BYTEA;
ALTER TABLE relay_queue ADD COLUMN audit_seq BIGINT;
ALTER TABLE relay_queue ADD COLUMN counted BIGINT;
ALTER TABLE relay_dead_letters ADD COLUMN audit_session BYTEA;
ALTER TABLE relay_dead_letters ADD COLUMN audit_seq BIGINT;

CREATE OR REPLACE FUNCTION relay_queue_usage_count() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO relay_queue_usage (recipient_id, messages, bytes)
            VALUES (NEW.recipient_id, 1, COALESCE(NEW.counted, LENGTH(NEW.body)))
            ON CONFLICT (recipient_id) DO UPDATE
            SET messages = relay_queue_usage.messages + 1,
                bytes = relay_queue_usage.bytes + EXCLUDED.bytes;
        RETURN NEW;
    END IF;
    UPDATE relay_queue_usage
        SET messages = messages - 1, bytes = bytes - COALESCE(OLD.counted, LENGTH(OLD.body))
        WHERE recipient_id = OLD.recipient_id;
    RETURN OLD;
END
$$;
