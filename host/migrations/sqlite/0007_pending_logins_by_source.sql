-- Logins in flight are bounded per source network and overall, the oldest evicted first
-- (issue 14): each row records its source's throttle key and an insertion order (`seq`).
-- Rows here live a minute or two: the table is made anew (logins in flight fail once).
-- Keep in step with ../postgres/0007_pending_logins_by_source.sql.
DROP TABLE pending_logins;
CREATE TABLE pending_logins (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    id         BLOB    NOT NULL UNIQUE,  -- the login id (stage 'start') or bundle id ('bundle')
    stage      TEXT    NOT NULL,
    source     TEXT    NOT NULL,         -- the source network's throttle key, e.g. 'a:2001:db8::/64'
    parts      BLOB    NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE INDEX pending_logins_expires_at ON pending_logins (expires_at);
CREATE INDEX pending_logins_source ON pending_logins (source, stage, seq);
