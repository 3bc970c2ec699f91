-- Login v2 (OPAQUE, RFC 9807). The host no longer holds a password hash: each user has an
-- OPAQUE registration record, and response verifiers are HMACs under a key only the password
-- holder can derive. v1's argon2id password hashes and verifiers can be attacked offline, so
-- they are erased here rather than kept: every user is enrolled again (`kasane-host user
-- remove` then `user add`).
-- Logins and bundles in flight are v1 state and are dropped.
ALTER TABLE users ADD COLUMN opaque_record BLOB;
ALTER TABLE users DROP COLUMN password_hash;
DELETE FROM challenge_pairs;
DELETE FROM pending_logins;
DELETE FROM challenge_bundles;
