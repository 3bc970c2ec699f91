-- Issue 12: one row a durable commit writes to put every earlier relaxed commit on disk
-- (`Store::make_durable`). A login start draws the user's access counter in its relaxed
-- transaction; before the finish answers a bundle carrying that counter, a durable write
-- started after the start's commit must have returned (SQLite syncs the whole WAL at a
-- `synchronous = FULL` commit, PostgreSQL flushes its WAL up to the commit's record). The
-- write must change something: a commit that writes nothing syncs nothing. Keep in step
-- with ../postgres/0013_durable_marks.sql.
CREATE TABLE durable_marks (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    n  INTEGER NOT NULL
);

INSERT INTO durable_marks (id, n) VALUES (1, 0);
