-- Logins between their requests (hello → password → response), so that any host replica
-- sharing this database can serve any step. `parts` is the host's encoding of the protocol
-- state (the X25519 shared secret, the exact messages so far, and after the password step
-- the chosen verifiers): secret material, kept at most until `expires_at` and taken once.
CREATE TABLE pending_logins (
    id         BLOB    PRIMARY KEY,  -- the login id (stage 'hello') or bundle id (stage 'bundle')
    stage      TEXT    NOT NULL,
    parts      BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX pending_logins_expires_at ON pending_logins (expires_at);
