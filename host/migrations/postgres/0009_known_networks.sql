-- Networks a user has logged in from (issue 14, item 1). A flood of failed logins naming a
-- user from many networks locks that user's global throttle key ('u:<name>'); from a network
-- where the user logged in within the last 30 days, its logins are throttled by a key of its
-- own ('un:<network>|<name>') and the source network's instead, so the flood cannot lock the
-- user out of the networks it really uses. Purged by housekeeping after 30 days.
-- Keep in step with ../sqlite/0009_known_networks.sql.
CREATE TABLE known_networks (
    user_name    TEXT   NOT NULL,
    network      TEXT   NOT NULL,  -- the network's throttle key, e.g. 'a:203.0.113.0/24'
    last_success BIGINT NOT NULL,
    PRIMARY KEY (user_name, network)
);
CREATE INDEX known_networks_last_success ON known_networks (last_success);
