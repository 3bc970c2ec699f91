-- What each user's sessions had audited per UTC day (`day` = seconds since the epoch /
-- 86400), in bytes of audit records: the daily budget (`messages.max_user_bytes_per_day`)
-- that keeps one user from filling the disk. Added to by the message commit, in the same
-- transaction as the records; days before yesterday are purged by housekeeping. Keep in step
-- with ../sqlite/0017_user_usage.sql.
CREATE TABLE user_usage (
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    day     BIGINT NOT NULL,
    bytes   BIGINT NOT NULL,
    PRIMARY KEY (user_id, day)
);
-- No index on `day`: housekeeping's purge scans the table, which holds a row per user for at
-- most two or three days, and each commit then updates one index fewer.
