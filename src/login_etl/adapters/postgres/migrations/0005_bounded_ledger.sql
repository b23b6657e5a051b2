-- A bounded ledger (docs/scaling.md). Exactly-once only has to cover the queue's retention, so
-- the ledger is partitioned by each message's SentTimestamp, one partition an hour, and
-- partitions older than retention plus a margin are dropped. A redelivery carries the same
-- SentTimestamp, so it is routed to the same partition and its claim conflicts there.

-- One row: when the ledger was last maintained, and when an unpartitioned ledger left by an
-- earlier release became `processed_messages_legacy` (NULL once it has aged out).
CREATE TABLE IF NOT EXISTS login_etl.ledger_state (
    id                  boolean PRIMARY KEY DEFAULT true CHECK (id),
    maintained_at       timestamptz,
    legacy_converted_at timestamptz
);
INSERT INTO login_etl.ledger_state (id) VALUES (true) ON CONFLICT DO NOTHING;

DO $$
DECLARE
    grantee_role text;
BEGIN
    IF EXISTS (SELECT FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
               WHERE n.nspname = 'login_etl' AND c.relname = 'processed_messages' AND c.relkind = 'r') THEN
        -- The old ledger's ids have no SentTimestamp: they stay, renamed (no copy), and the
        -- claim anti-joins them until retention has passed since this moment.
        ALTER TABLE login_etl.processed_messages RENAME TO processed_messages_legacy;
        ALTER TABLE login_etl.processed_messages_legacy
            RENAME CONSTRAINT processed_messages_pkey TO processed_messages_legacy_pkey;
        UPDATE login_etl.ledger_state SET legacy_converted_at = now()
            WHERE EXISTS (SELECT FROM login_etl.processed_messages_legacy);
        -- Whoever could claim before may now only read the legacy ids.
        FOR grantee_role IN
            SELECT DISTINCT a.grantee::regrole::text
            FROM pg_catalog.pg_class c, LATERAL aclexplode(c.relacl) a
            WHERE c.oid = 'login_etl.processed_messages_legacy'::regclass
              AND a.grantee <> c.relowner AND a.grantee <> 0
        LOOP
            EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON'
                           ' login_etl.processed_messages_legacy FROM %s', grantee_role);
        END LOOP;
    END IF;
END $$;

-- Always there (empty on a fresh install), so that the claim statement never changes.
CREATE TABLE IF NOT EXISTS login_etl.processed_messages_legacy (
    message_id   text PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);

-- sent_at is the message's SentTimestamp. Its default (now) is for hand-made entries only: the
-- sink always passes the SentTimestamp, which is what makes a redelivery conflict.
CREATE TABLE IF NOT EXISTS login_etl.processed_messages (
    message_id   text NOT NULL,
    sent_at      timestamptz NOT NULL DEFAULT now(),
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (message_id, sent_at)
) PARTITION BY RANGE (sent_at);

-- SentTimestamps outside every hourly partition (a producer's clock far off, a clamped value):
-- never pruned by dropping a partition, so maintain_ledger deletes its rows by processed_at.
CREATE TABLE IF NOT EXISTS login_etl.processed_messages_default
    PARTITION OF login_etl.processed_messages DEFAULT;

-- The hourly partition starting at `hour`. Ids already in the default partition for that hour
-- are moved into it first (a CREATE … PARTITION OF would fail on them).
CREATE OR REPLACE FUNCTION login_etl.create_ledger_partition(hour timestamptz) RETURNS text
    LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC'
    AS $$
DECLARE
    name text := 'processed_messages_p' || to_char(hour, 'YYYYMMDD"T"HH24');
    upper timestamptz := hour + interval '1 hour';
BEGIN
    IF hour <> date_trunc('hour', hour) THEN
        RAISE EXCEPTION 'a ledger partition starts on the hour, not at %', hour;
    END IF;
    IF to_regclass('login_etl.' || quote_ident(name)) IS NOT NULL THEN
        RETURN NULL;
    END IF;
    -- The parent first, as a claim locks it (then the partition it routes to): no deadlock.
    -- This waits for the batch in flight to commit (maintain_ledger's lock_timeout bounds it).
    LOCK TABLE login_etl.processed_messages IN ACCESS EXCLUSIVE MODE;
    LOCK TABLE login_etl.processed_messages_default IN SHARE MODE;
    IF EXISTS (SELECT FROM login_etl.processed_messages_default
               WHERE sent_at >= hour AND sent_at < upper) THEN
        EXECUTE format('CREATE TABLE login_etl.%I (LIKE login_etl.processed_messages'
                       ' INCLUDING DEFAULTS)', name);
        EXECUTE format('WITH moved AS (DELETE FROM login_etl.processed_messages_default'
                       ' WHERE sent_at >= $1 AND sent_at < $2 RETURNING *)'
                       ' INSERT INTO login_etl.%I SELECT * FROM moved', name) USING hour, upper;
        EXECUTE format('ALTER TABLE login_etl.processed_messages ATTACH PARTITION login_etl.%I'
                       ' FOR VALUES FROM (%L) TO (%L)', name, hour, upper);
    ELSE
        EXECUTE format('CREATE TABLE login_etl.%I PARTITION OF login_etl.processed_messages'
                       ' FOR VALUES FROM (%L) TO (%L)', name, hour, upper);
    END IF;
    RETURN name;
END $$;

-- The ledger's housekeeping, run by the worker (at most once per `min_interval`) and by
-- `login-etl prune` (min_interval 0). SECURITY DEFINER: the service role runs it without any
-- DDL privilege of its own. One caller at a time (an advisory lock; 'busy' to the others).
-- Creates the hourly partitions from retention + margin behind to 48 hours ahead; drops those
-- that end before now - retention - margin; deletes default-partition ids claimed before that;
-- empties the legacy ledger once its conversion is that old. Returns what it did (or would do).
CREATE OR REPLACE FUNCTION login_etl.maintain_ledger(
    retention interval, dry_run boolean DEFAULT false, min_interval interval DEFAULT '1 hour'
) RETURNS TABLE (action text, relation text, detail text)
    LANGUAGE plpgsql SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp SET TimeZone = 'UTC' SET lock_timeout = '10s'
    AS $$
DECLARE
    margin constant interval := interval '1 day';
    ahead constant interval := interval '48 hours';
    cutoff timestamptz;
    hour timestamptz;
    last timestamptz;
    converted timestamptz;
    part record;
    n bigint;
BEGIN
    IF retention IS NULL OR retention < interval '1 minute' OR retention > interval '14 days' THEN
        RAISE EXCEPTION 'retention % is outside SQS''s range, 1 minute to 14 days', retention
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF NOT pg_try_advisory_xact_lock(4994113284425355620) THEN  -- another caller is at it
        RETURN QUERY SELECT 'busy'::text, NULL::text, NULL::text;
        RETURN;
    END IF;
    SELECT s.maintained_at, s.legacy_converted_at INTO last, converted FROM login_etl.ledger_state s;
    IF last IS NOT NULL AND last > now() - coalesce(min_interval, interval '0') THEN
        RETURN QUERY SELECT 'skipped'::text, NULL::text, format('maintained at %s', last);
        RETURN;
    END IF;
    cutoff := now() - retention - margin;
    hour := date_trunc('hour', cutoff);
    WHILE hour < date_trunc('hour', now()) + ahead LOOP
        IF hour + interval '1 hour' > cutoff AND to_regclass(
                'login_etl.processed_messages_p' || to_char(hour, 'YYYYMMDD"T"HH24')) IS NULL THEN
            IF NOT dry_run THEN
                PERFORM login_etl.create_ledger_partition(hour);
            END IF;
            RETURN QUERY SELECT 'create'::text,
                'processed_messages_p' || to_char(hour, 'YYYYMMDD"T"HH24'), hour::text;
        END IF;
        hour := hour + interval '1 hour';
    END LOOP;
    FOR part IN
        SELECT c.relname::text AS name,
               to_timestamp(substr(c.relname, 21), 'YYYYMMDD"T"HH24') AS starts
        FROM pg_catalog.pg_inherits i JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'login_etl.processed_messages'::regclass
          AND c.relname ~ '^processed_messages_p[0-9]{8}T[0-9]{2}$'
        ORDER BY 1
    LOOP
        IF part.starts + interval '1 hour' <= cutoff THEN
            IF NOT dry_run THEN
                LOCK TABLE login_etl.processed_messages IN ACCESS EXCLUSIVE MODE;  -- parent first
                EXECUTE format('DROP TABLE login_etl.%I', part.name);
            END IF;
            RETURN QUERY SELECT 'drop'::text, part.name, part.starts::text;
        END IF;
    END LOOP;
    IF dry_run THEN
        SELECT count(*) INTO n FROM login_etl.processed_messages_default WHERE processed_at < cutoff;
    ELSE
        DELETE FROM login_etl.processed_messages_default WHERE processed_at < cutoff;
        GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    IF n > 0 THEN
        RETURN QUERY SELECT 'delete'::text, 'processed_messages_default'::text, format('%s ids', n);
    END IF;
    IF converted IS NOT NULL AND converted < cutoff THEN
        IF NOT dry_run THEN
            TRUNCATE login_etl.processed_messages_legacy;
            UPDATE login_etl.ledger_state SET legacy_converted_at = NULL;
        END IF;
        RETURN QUERY SELECT 'truncate'::text, 'processed_messages_legacy'::text,
            format('converted at %s', converted);
    END IF;
    IF NOT dry_run THEN
        UPDATE login_etl.ledger_state SET maintained_at = now();
    END IF;
END $$;

REVOKE ALL ON FUNCTION login_etl.create_ledger_partition(timestamptz) FROM PUBLIC;
REVOKE ALL ON FUNCTION login_etl.maintain_ledger(interval, boolean, interval) FROM PUBLIC;

-- Ids claimed before the conversion by whoever could claim then: they keep that right.
DO $$
DECLARE
    grantee_role text;
BEGIN
    FOR grantee_role IN
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_catalog.pg_class c, LATERAL aclexplode(c.relacl) a
        WHERE c.oid = 'login_etl.processed_messages_legacy'::regclass
          AND a.privilege_type = 'SELECT' AND a.grantee <> c.relowner AND a.grantee <> 0
        UNION
        SELECT DISTINCT a.grantee::regrole::text
        FROM pg_catalog.pg_attribute t, LATERAL aclexplode(t.attacl) a
        WHERE t.attrelid = 'login_etl.processed_messages_legacy'::regclass
          AND t.attname = 'message_id' AND a.privilege_type = 'SELECT' AND a.grantee <> 0
    LOOP
        EXECUTE format('GRANT INSERT, SELECT (message_id, sent_at) ON login_etl.processed_messages'
                       ' TO %s', grantee_role);
        EXECUTE format('GRANT EXECUTE ON FUNCTION login_etl.maintain_ledger(interval, boolean,'
                       ' interval) TO %s', grantee_role);
    END LOOP;
END $$;

-- The first partitions are made by migration 0007, after it has re-keyed the ledger (this file
-- made them itself until 0007 came; a database migrated then has them already).
