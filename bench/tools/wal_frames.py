#!/usr/bin/env python3
"""WAL frames per group commit: what a batch of Kasane messages writes to SQLite, beside the
durable-POST baseline's one row per body (BENCHMARKS.md, issue 15).

Builds a database from the host's own migrations (host/migrations/sqlite), makes 16 sessions
of one user sending to another, then commits batches the way the message committer does
(host/src/store/batch_sql.rs): per message, the session's replay window, the audit record
(the body's ciphertext in its payload) and the queue entry (with its usage trigger). Each
batch is one `BEGIN IMMEDIATE … COMMIT`; the WAL's growth over the commit, divided by the
frame size, is the pages that commit wrote (each is written, checksummed and later
checkpointed: the commit thread's main cost in the profiles). Single-row statements touch the
same pages as the committer's multi-row ones.

    python3 bench/tools/wal_frames.py [--body 4300] [--batch 6] [--sessions 16] [--page 4096]
                                      [--layout links] [--layout plain-queue]

Prints frames per commit for: the baseline, Kasane, and Kasane without each of its writes
(which shows what each costs). `--page` sets SQLite's page size for both. `--layout` tries a
layout the host does not have (BENCHMARKS.md, run K): `links`, the audit log without its
`(session_id, seq)` index (each record would name its chain's previous row); `plain-queue`,
the queue without `AUTOINCREMENT` and its usage row. Only Python's standard library.
"""
import argparse
import glob
import os
import random
import sqlite3
import tempfile

MIGRATIONS = os.path.join(os.path.dirname(__file__), "..", "..", "host", "migrations", "sqlite")
WRITES = ("window", "audit", "queue")


def open_db(path, page):
    db = sqlite3.connect(path, isolation_level=None)
    db.execute(f"PRAGMA page_size = {page}")
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    # No checkpoint moves the WAL back to its start while frames are counted.
    db.execute("PRAGMA wal_autocheckpoint = 0")
    return db


def drop_table(db, table):
    for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'trigger' "
                              "AND tbl_name = ?", (table,)).fetchall():
        db.execute(f"DROP TRIGGER {name}")
    db.execute(f"DROP TABLE {table}")


def relayout(db, layout):
    if "links" in layout:
        drop_table(db, "audit_log")
        db.execute("CREATE TABLE audit_log (id INTEGER PRIMARY KEY, session_id BLOB NOT NULL, "
                   "seq INTEGER NOT NULL, prev_hash BLOB NOT NULL, record_hash BLOB NOT NULL, "
                   "payload BLOB NOT NULL, created_at INTEGER NOT NULL, prev_id INTEGER)")
    if "plain-queue" in layout:
        drop_table(db, "relay_queue")
        db.execute("CREATE TABLE relay_queue (id INTEGER PRIMARY KEY, recipient_id INTEGER NOT "
                   "NULL, body BLOB NOT NULL, created_at INTEGER NOT NULL, audit_session BLOB, "
                   "audit_seq INTEGER, counted INTEGER)")
        db.execute("CREATE INDEX relay_queue_recipient ON relay_queue (recipient_id, id)")


def setup(db, sessions, layout):
    for f in sorted(glob.glob(os.path.join(MIGRATIONS, "*.sql"))):
        db.executescript(open(f).read())
    relayout(db, layout)
    db.execute("CREATE TABLE bodies (id INTEGER PRIMARY KEY, body BLOB NOT NULL, "
               "created_at INTEGER NOT NULL)")
    db.execute("INSERT INTO users (name, counter, created_at, opaque_record) "
               "VALUES ('alice', 0, 0, x'00'), ('bob', 0, 0, x'00')")
    ids = [os.urandom(16) for _ in range(sessions)]
    for sid in ids:
        # A session's stored protocol state is a few hundred bytes.
        db.execute("INSERT INTO sessions (token_hash, session_id, user_id, created_at, "
                   "last_seen, expires_at, secret) VALUES (?, ?, 1, 0, 0, 0, ?)",
                   (os.urandom(32), sid, os.urandom(400)))
    return ids


def message(db, sid, seq, body, writes):
    if "window" in writes:
        db.execute("UPDATE sessions SET last_seq_from_client = ?, seq_window = -1 "
                   "WHERE session_id = ?", (seq, sid))
    if "audit" in writes:
        db.execute("INSERT INTO audit_log (session_id, seq, prev_hash, record_hash, payload, "
                   "created_at) VALUES (?, ?, ?, ?, ?, 0)",
                   (sid, seq, os.urandom(32), os.urandom(32), os.urandom(body)))
    if "queue" in writes:
        db.execute("INSERT INTO relay_queue (recipient_id, body, created_at, counted, "
                   "audit_session, audit_seq) VALUES (2, ?, 0, ?, ?, ?)",
                   (os.urandom(90), body, sid, seq))


def frames_per_commit(args, writes, rounds=300, warmup=50):
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "kasane.db")
        db = open_db(path, args.page)
        ids = setup(db, args.sessions, args.layout)
        seq = dict.fromkeys(ids, 0)
        counts = []
        for r in range(rounds):
            before = os.path.getsize(path + "-wal")
            db.execute("BEGIN IMMEDIATE")
            for sid in random.sample(ids, min(args.batch, len(ids))):
                if writes is None:
                    db.execute("INSERT INTO bodies (body, created_at) VALUES (?, 0)",
                               (os.urandom(args.body),))
                else:
                    seq[sid] += 1
                    message(db, sid, seq[sid], args.body, writes)
            db.execute("COMMIT")
            if r >= warmup:
                counts.append((os.path.getsize(path + "-wal") - before) / (args.page + 24))
        db.close()
        return sum(counts) / len(counts)


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--body", type=int, default=4300,
                   help="bytes of each body (a 4 KiB message's audit payload: ~4,300)")
    p.add_argument("--batch", type=int, default=6, help="messages per commit")
    p.add_argument("--sessions", type=int, default=16, help="sessions sending")
    p.add_argument("--page", type=int, default=4096, help="SQLite's page size (bytes)")
    p.add_argument("--layout", action="append", default=[], choices=("links", "plain-queue"),
                   help="a layout change to try (repeatable)")
    args = p.parse_args()
    random.seed(1)
    base = frames_per_commit(args, None)
    full = frames_per_commit(args, WRITES)
    print(f"body {args.body} B, {args.batch} messages per commit, {args.sessions} sessions, "
          f"{args.page} B pages, layout {'+'.join(args.layout) or 'as the host has it'}")
    print(f"durable POST (one row per body): {base:5.1f} frames per commit")
    print(f"kasane (window, audit, queue):   {full:5.1f} frames per commit, "
          f"{full / base:.2f}x the baseline")
    for w in WRITES:
        without = frames_per_commit(args, tuple(x for x in WRITES if x != w))
        print(f"  of which the {w:6s}: {full - without:5.1f}")


if __name__ == "__main__":
    main()
