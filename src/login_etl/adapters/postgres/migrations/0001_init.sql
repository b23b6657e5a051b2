-- The exercise's table, exactly as its Postgres image creates it; left alone when it exists.
CREATE TABLE IF NOT EXISTS public.user_logins (
    user_id          varchar(128),
    device_type      varchar(32),
    masked_ip        varchar(256),
    masked_device_id varchar(256),
    locale           varchar(32),
    app_version      integer,
    create_date      date
);

-- Every SQS message whose outcome is committed: the ledger that makes redeliveries harmless.
CREATE TABLE IF NOT EXISTS login_etl.processed_messages (
    message_id   text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- Messages that failed validation: why, and the body encrypted with the quarantine key.
CREATE TABLE IF NOT EXISTS login_etl.rejected_messages (
    message_id  text PRIMARY KEY,
    rejected_at timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz,
    reason      text NOT NULL,
    body        bytea NOT NULL
);

-- Ciphertexts of values too long for an inline token in a varchar(256) column.
CREATE TABLE IF NOT EXISTS login_etl.masked_values (
    token      text PRIMARY KEY,
    field      text NOT NULL CHECK (field IN ('ip', 'device_id')),
    ciphertext bytea NOT NULL
);

-- The inverse of the app_version encoding: 2003000 -> '2.3.0'.
CREATE OR REPLACE FUNCTION login_etl.app_version_text(version integer) RETURNS text
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT format('%s.%s.%s', version / 1000000, version / 1000 % 1000, version % 1000) $$;
