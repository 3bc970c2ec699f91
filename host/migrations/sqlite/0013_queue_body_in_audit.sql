-- Issue 15: a client's message is written once. Its queue entry no longer holds a second copy
-- of the body: it names the message's audit record (which holds the ciphertext as received)
-- and holds, sealed at rest under keys/queue.key, the message key that opens it.
-- `audit_session`/`audit_seq` name the record (NULL: an entry that holds its body, as every
-- entry did before this migration); `counted` is what the entry counts against the
-- recipient's quota (NULL: the length of `body`). The audit log is append-only, so the
-- record outlives the entry. Keep in step with ../postgres/0014_queue_body_in_audit.sql.
ALTER TABLE relay_queue ADD COLUMN audit_session BLOB;
ALTER TABLE relay_queue ADD COLUMN audit_seq INTEGER;
ALTER TABLE relay_queue ADD COLUMN counted INTEGER;
ALTER TABLE relay_dead_letters ADD COLUMN audit_session BLOB;
ALTER TABLE relay_dead_letters ADD COLUMN audit_seq INTEGER;

DROP TRIGGER relay_queue_usage_insert;
DROP TRIGGER relay_queue_usage_delete;

CREATE TRIGGER relay_queue_usage_insert AFTER INSERT ON relay_queue
BEGIN
    INSERT INTO relay_queue_usage (recipient_id, messages, bytes)
        VALUES (NEW.recipient_id, 1, COALESCE(NEW.counted, LENGTH(NEW.body)))
        ON CONFLICT (recipient_id) DO UPDATE
        SET messages = messages + 1, bytes = bytes + excluded.bytes;
END;

CREATE TRIGGER relay_queue_usage_delete AFTER DELETE ON relay_queue
BEGIN
    UPDATE relay_queue_usage
        SET messages = messages - 1, bytes = bytes - COALESCE(OLD.counted, LENGTH(OLD.body))
        WHERE recipient_id = OLD.recipient_id;
END;
