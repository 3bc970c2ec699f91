-- Issue 15: several messages in flight per session. The client's sequence numbers are
-- accepted in a sliding window (RFC 6347 §4.1.2.6): `last_seq_from_client` is the highest
-- accepted, `seq_window` a bitmap of the 64 ending there (bit i: last_seq_from_client - i).
-- -1 (every bit) marks every number up to the highest as seen: exact for sessions from
-- before the window, which accepted strictly in order, and harmless for new ones.
ALTER TABLE sessions ADD COLUMN seq_window INTEGER NOT NULL DEFAULT -1;
