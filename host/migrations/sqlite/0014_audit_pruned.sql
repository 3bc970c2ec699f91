-- Retention of the audit log (`kasane-host audit prune`). A chain is pruned whole: its
-- session has ended, no queued message names one of its records, and its last record is
-- older than the cut-off. Pruning writes one row here, the chain's head signed by the host
-- key over "kasane/v1/audit-pruned" ‖ session id ‖ u64_be(seq) ‖ record_hash, and deletes
-- the chain's records in the same transaction. `audit verify` checks the signature, accepts
-- the chain's checkpoints (kept) up to that head, and refuses any record of a pruned chain.
-- Keep in step with ../postgres/0015_audit_pruned.sql.
CREATE TABLE audit_pruned (
    session_id  BLOB    PRIMARY KEY,
    seq         INTEGER NOT NULL,   -- the chain's length when pruned
    record_hash BLOB    NOT NULL,   -- the record_hash of its last record
    signature   BLOB    NOT NULL,   -- by the host key
    created_at  INTEGER NOT NULL    -- when it was pruned
);

CREATE TRIGGER audit_pruned_no_update BEFORE UPDATE ON audit_pruned
BEGIN
    SELECT RAISE(ABORT, 'audit_pruned is append-only');
END;
CREATE TRIGGER audit_pruned_no_delete BEFORE DELETE ON audit_pruned
BEGIN
    SELECT RAISE(ABORT, 'audit_pruned is append-only');
END;

-- A record may be deleted only once its chain is marked pruned, up to the marked head.
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
WHEN NOT EXISTS (SELECT 1 FROM audit_pruned p
                 WHERE p.session_id = OLD.session_id AND p.seq >= OLD.seq)
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only (a chain leaves it only by kasane-host audit prune)');
END;
