-- os_user is the name of the uid that ran the command, which the environment cannot change.
-- os_user_claimed keeps what LOGNAME/USER said when that was someone else (NULL when they agree
-- or say nothing): a mismatch is worth a look, and the claim alone proves nothing.
ALTER TABLE login_etl.reveal_audit ADD COLUMN IF NOT EXISTS os_user_claimed text;
