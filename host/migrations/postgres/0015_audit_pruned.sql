-- Retention of the audit log (`kasane-host audit prune`). A chain is pruned whole: its
-- session has ended, no queued message names one of its records, and its last record is
-- older than the cut-off. Pruning writes one row here, the chain's head signed by the host
-- key over "kasane/v1/audit-pruned" ‖ session id ‖ u64_be(seq) ‖ record_hash, and deletes
-- the chain's records in the same transaction. `audit verify` checks the signature, accepts
-- the chain's checkpoints (kept) up to that head, and refuses any record of a pruned chain.
-- Keep in step with ../sqlite/0014_audit_pruned.sql.
CREATE TABLE audit_pruned (
    session_id  BYTEA  PRIMARY KEY,
    seq         BIGINT NOT NULL,    -- the chain's length when pruned
    record_hash BYTEA  NOT NULL,    -- the record_hash of its last record
    signature   BYTEA  NOT NULL,    -- by the host key
    created_at  BIGINT NOT NULL     -- when it was pruned
);

CREATE FUNCTION audit_pruned_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_pruned is append-only';
END;
$$;
CREATE TRIGGER audit_pruned_append_only BEFORE UPDATE OR DELETE ON audit_pruned
    FOR EACH ROW EXECUTE FUNCTION audit_pruned_append_only();

-- A record may be deleted only once its chain is marked pruned, up to the marked head.
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (SELECT 1 FROM audit_pruned p
            WHERE p.session_id = OLD.session_id AND p.seq >= OLD.seq) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only (a chain leaves it only by kasane-host audit prune)';
END;
$$;
