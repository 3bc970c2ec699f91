-- Checkpoints of the per-session audit chains, signed by the host key (issue 6): a verifier
-- that trusts the host key can tell a truncated or rewritten chain from an intact one.
CREATE TABLE audit_checkpoints (
    session_id  BLOB    NOT NULL,
    seq         INTEGER NOT NULL,
    record_hash BLOB    NOT NULL,  -- the record_hash of audit_log (session_id, seq)
    signature   BLOB    NOT NULL,  -- by the host key, over what the host defines
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE TRIGGER audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;
CREATE TRIGGER audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN
    SELECT RAISE(ABORT, 'audit_checkpoints is append-only');
END;
