-- A login in flight names the user it is for:
-- - a credential change, `user logout` or `user remove` ends that user's logins in flight
--   with their sessions (a held challenge bundle must not open a session after the
--   credentials it was checked against are gone);
-- - bundles (past the password) are bounded per user, starts (before it) in all, so a flood
--   of starts never evicts a bundle someone is typing the answers to.
-- Keep in step with ../sqlite/0016_pending_logins_by_user.sql.
ALTER TABLE pending_logins ADD COLUMN user_name TEXT;
CREATE INDEX pending_logins_user ON pending_logins (user_name, stage, seq);
CREATE INDEX pending_logins_stage ON pending_logins (stage, seq);
