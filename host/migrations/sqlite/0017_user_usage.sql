-- What each user's sessions had audited per UTC day (`day` = seconds since the epoch /
-- 86400), in bytes of audit records: the daily budget (`messages.max_user_bytes_per_day`)
-- that keeps one user from filling the disk. Added to by the message commit, in the same
-- transaction as the records; days before yesterday are purged by housekeeping. Keep in step
-- with ../postgres/0018_user_usage.sql.
--
-- WITHOUT ROWID and no second index: the commit that adds to a row then dirties one B-tree
-- page, not three (a rowid table, its primary-key index and an index on `day` each took a
-- WAL frame per commit, measurable in the message throughput). Housekeeping's purge by `day`
-- scans the table, which holds a row per user for at most two or three days.
CREATE TABLE user_usage (
    user_id INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     INTEGER NOT NULL,
    bytes   INTEGER NOT NULL,
    PRIMARY KEY (user_id, day)
) WITHOUT ROWID;
