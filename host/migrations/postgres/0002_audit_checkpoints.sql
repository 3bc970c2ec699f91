-- Checkpoints of the per-session audit chains, signed by the host key (issue 6): a verifier
-- that trusts the host key can tell a truncated or rewritten chain from an intact one.
CREATE TABLE audit_checkpoints (
    session_id  BYTEA  NOT NULL,
    seq         BIGINT NOT NULL,
    record_hash BYTEA  NOT NULL,   -- the record_hash of audit_log (session_id, seq)
    signature   BYTEA  NOT NULL,   -- by the host key, over what the host defines
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

CREATE FUNCTION audit_checkpoints_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_checkpoints is append-only';
END;
$$;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE ON audit_checkpoints
    FOR EACH ROW EXECUTE FUNCTION audit_checkpoints_append_only();
