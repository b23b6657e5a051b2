-- The ledger's primary key leads with sent_at (the SentTimestamp). New claims then land at the
-- right edge of the partition's index, which stays in memory however many ids the partition
-- holds: with (message_id, sent_at), random ids spread each batch's inserts over the whole
-- index, and once a partition's index outgrew shared_buffers every claim was random I/O
-- (docs/scaling.md has the numbers). Uniqueness is the same pair; ON CONFLICT (message_id,
-- sent_at) names the columns, in any order, so the claim statement is unchanged.
-- On a big ledger this rebuilds every partition's index under an exclusive lock: run it while
-- the workers are stopped (docs/operations.md, upgrades).
ALTER TABLE login_etl.processed_messages DROP CONSTRAINT IF EXISTS processed_messages_pkey;
ALTER TABLE login_etl.processed_messages ADD CONSTRAINT processed_messages_pkey
    PRIMARY KEY (sent_at, message_id);

-- Maintenance as in 0005, except that only the partitions it makes are reported as created.
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
        -- quote_ident: the name has a capital T, which an unquoted name would fold (0005 missed
        -- it, so every existing hour was reported as created).
        IF hour + interval '1 hour' > cutoff AND to_regclass('login_etl.' || quote_ident(
                'processed_messages_p' || to_char(hour, 'YYYYMMDD"T"HH24'))) IS NULL THEN
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

-- The partitions a fresh install needs first (0005's maintenance made them until this file
-- came): a day behind, for messages already waiting, to 48 hours ahead. The hours further back,
-- to the cutoff, are made by the first maintenance (a worker's first beat, the Lambda, `prune`),
-- which moves into them any ids claimed meanwhile in the default partition. In UTC hours.
SELECT count(login_etl.create_ledger_partition(h))
FROM generate_series(
    date_trunc('hour', (now() - interval '1 day') AT TIME ZONE 'UTC') AT TIME ZONE 'UTC',
    date_trunc('hour', now() AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' + interval '47 hours',
    interval '1 hour') AS h;
