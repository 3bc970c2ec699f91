-- Sessions ended, for the other processes on this database: each host reads the ends of the
-- last few seconds every second and forgets those sessions from its memory, so a logout on
-- another replica, `kasane-host user logout`, a password change or a user's removal is
-- refused everywhere within about a second, not at the next write-through (up to a minute).
-- Every deletion from `sessions` (logout, expiry, cascade) is noted by the trigger; the time
-- is the database's (the moment of the delete, not of the transaction's start; readers
-- re-read a few seconds back, as transactions commit in another order than they delete).
-- Housekeeping deletes ends older than two minutes before the newest.
-- Keep in step with ../sqlite/0015_session_ends.sql.
CREATE TABLE session_ends (
    id         BIGSERIAL PRIMARY KEY,
    token_hash BYTEA  NOT NULL,
    ended_at   BIGINT NOT NULL
);
CREATE INDEX session_ends_ended_at ON session_ends (ended_at);

CREATE FUNCTION sessions_ended() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO session_ends (token_hash, ended_at)
        VALUES (OLD.token_hash, CAST(extract(epoch FROM clock_timestamp()) AS BIGINT));
    RETURN OLD;
END;
$$;
CREATE TRIGGER sessions_ended AFTER DELETE ON sessions
    FOR EACH ROW EXECUTE FUNCTION sessions_ended();
