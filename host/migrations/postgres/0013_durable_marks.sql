-- Issue 12: one row a durable commit writes to put every earlier relaxed commit on disk
-- (`Store::make_durable`). A login start draws the user's access counter in its relaxed
-- transaction (`synchronous_commit = off`); before the finish answers a bundle carrying that
-- counter, a durable write started after the start's commit must have returned (PostgreSQL
-- flushes its WAL up to the commit's record, which covers every earlier record). The write
-- must change something: a transaction that writes nothing flushes nothing. Keep in step
-- with ../sqlite/0012_durable_marks.sql.
CREATE TABLE durable_marks (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);

INSERT INTO durable_marks (id, n) VALUES (1, 0);
