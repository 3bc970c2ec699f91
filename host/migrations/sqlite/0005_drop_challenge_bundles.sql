-- A login's single use is the pending login's (`pending_logins`, stage `bundle`, taken once):
-- the separate copy of each challenge bundle cost two statements per login and guarded
-- nothing more. Rows here are bundles in flight; dropping them fails those logins only.
DROP TABLE challenge_bundles;
