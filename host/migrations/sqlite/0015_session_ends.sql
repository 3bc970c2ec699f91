-- Sessions ended, for the other processes on this database: each host reads the ends of the
-- last few seconds every second and forgets those sessions from its memory, so a logout on
-- another replica, `kasane-host user logout`, a password change or a user's removal is
-- refused everywhere within about a second, not at the next write-through (up to a minute).
-- Every deletion from `sessions` (logout, expiry, cascade) is noted by the trigger; the time
-- is the database's. Housekeeping deletes ends older than two minutes before the newest.
-- Keep in step with ../postgres/0016_session_ends.sql.
CREATE TABLE session_ends (
    id         INTEGER PRIMARY KEY,
    token_hash BLOB    NOT NULL,
    ended_at   INTEGER NOT NULL
);
CREATE INDEX session_ends_ended_at ON session_ends (ended_at);

CREATE TRIGGER sessions_ended AFTER DELETE ON sessions
BEGIN
    INSERT INTO session_ends (token_hash, ended_at)
        VALUES (OLD.token_hash, CAST(strftime('%s', 'now') AS INTEGER));
END;
