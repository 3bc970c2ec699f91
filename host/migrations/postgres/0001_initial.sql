-- Kasane host storage, PostgreSQL. Times are unix seconds; every integer is BIGINT (i64 on
-- the Rust side). Keep in step with ../sqlite/0001_initial.sql.

CREATE TABLE users (
    id            BIGSERIAL PRIMARY KEY,
    name          TEXT   NOT NULL UNIQUE,
    password_hash TEXT   NOT NULL,            -- argon2id PHC string
    counter       BIGINT NOT NULL DEFAULT 0,  -- last access counter handed out
    created_at    BIGINT NOT NULL
);

CREATE TABLE challenge_pairs (
    user_id  BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idx      BIGINT NOT NULL,
    prompt   TEXT   NOT NULL,
    salt     BYTEA  NOT NULL,
    verifier BYTEA  NOT NULL,                 -- argon2id(response, salt); never the response
    PRIMARY KEY (user_id, idx)
);

-- Not tied to users: decoy bundles for unknown users are stored the same way.
CREATE TABLE challenge_bundles (
    id         BYTEA  PRIMARY KEY,
    user_name  TEXT   NOT NULL,
    body       BYTEA  NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX challenge_bundles_expires_at ON challenge_bundles (expires_at);

CREATE TABLE sessions (
    token_hash           BYTEA  PRIMARY KEY,  -- hash of the session token; never the token
    session_id           BYTEA  NOT NULL UNIQUE,
    user_id              BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at           BIGINT NOT NULL,
    last_seen            BIGINT NOT NULL,
    expires_at           BIGINT NOT NULL,     -- absolute lifetime
    secret               BYTEA  NOT NULL,
    last_seq_from_client BIGINT NOT NULL DEFAULT 0,
    last_seq_to_client   BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- key: 'u:<user name>' or 'a:<source address>'.
CREATE TABLE throttle (
    key          TEXT   PRIMARY KEY,
    failures     BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    last_failure BIGINT NOT NULL
);

CREATE TABLE relay_queue (
    id           BIGSERIAL PRIMARY KEY,
    recipient_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body         BYTEA  NOT NULL,             -- sealed at rest by the host
    created_at   BIGINT NOT NULL
);
CREATE INDEX relay_queue_recipient ON relay_queue (recipient_id, id);

-- Per-session hash chains; no foreign key: the log outlives sessions and users.
CREATE TABLE audit_log (
    session_id  BYTEA  NOT NULL,
    seq         BIGINT NOT NULL,
    prev_hash   BYTEA  NOT NULL,
    record_hash BYTEA  NOT NULL,
    payload     BYTEA  NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- Append-only. (Tamper tests drop this trigger first, as an attacker with the database would.)
CREATE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
