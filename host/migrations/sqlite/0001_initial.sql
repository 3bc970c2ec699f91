-- Kasane host storage, SQLite. Times are unix seconds; counters and sequence numbers are
-- INTEGER (64-bit). Keep in step with ../postgres/0001_initial.sql.

CREATE TABLE users (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    name          TEXT    NOT NULL UNIQUE,
    password_hash TEXT    NOT NULL,           -- argon2id PHC string
    counter       INTEGER NOT NULL DEFAULT 0, -- last access counter handed out
    created_at    INTEGER NOT NULL
);

CREATE TABLE challenge_pairs (
    user_id  INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    idx      INTEGER NOT NULL,
    prompt   TEXT    NOT NULL,
    salt     BLOB    NOT NULL,
    verifier BLOB    NOT NULL,                -- argon2id(response, salt); never the response
    PRIMARY KEY (user_id, idx)
);

-- Not tied to users: decoy bundles for unknown users are stored the same way.
CREATE TABLE challenge_bundles (
    id         BLOB    PRIMARY KEY,
    user_name  TEXT    NOT NULL,
    body       BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX challenge_bundles_expires_at ON challenge_bundles (expires_at);

CREATE TABLE sessions (
    token_hash           BLOB    PRIMARY KEY, -- hash of the session token; never the token
    session_id           BLOB    NOT NULL UNIQUE,
    user_id              INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at           INTEGER NOT NULL,
    last_seen            INTEGER NOT NULL,
    expires_at           INTEGER NOT NULL,    -- absolute lifetime
    secret               BLOB    NOT NULL,
    last_seq_from_client INTEGER NOT NULL DEFAULT 0,
    last_seq_to_client   INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);
CREATE INDEX sessions_last_seen ON sessions (last_seen);

-- key: 'u:<user name>' or 'a:<source address>'.
CREATE TABLE throttle (
    key          TEXT    PRIMARY KEY,
    failures     INTEGER NOT NULL,
    locked_until INTEGER NOT NULL,
    last_failure INTEGER NOT NULL
);

CREATE TABLE relay_queue (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    recipient_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    body         BLOB    NOT NULL,            -- sealed at rest by the host
    created_at   INTEGER NOT NULL
);
CREATE INDEX relay_queue_recipient ON relay_queue (recipient_id, id);

-- Per-session hash chains; no foreign key: the log outlives sessions and users.
CREATE TABLE audit_log (
    session_id  BLOB    NOT NULL,
    seq         INTEGER NOT NULL,
    prev_hash   BLOB    NOT NULL,
    record_hash BLOB    NOT NULL,
    payload     BLOB    NOT NULL,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (session_id, seq)
);

-- Append-only. (Tamper tests drop these triggers first, as an attacker with the file would.)
CREATE TRIGGER audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN
    SELECT RAISE(ABORT, 'audit_log is append-only');
END;
