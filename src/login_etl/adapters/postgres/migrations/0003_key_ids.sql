-- Which Tink key each stored ciphertext needs. Every ciphertext starts with Tink's TINK output
-- prefix: 0x01, then the 4-byte big-endian key id. rekey and `keys check` count by these.

CREATE OR REPLACE FUNCTION login_etl.tink_key_id(ciphertext bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT CASE WHEN length(ciphertext) >= 5 AND get_byte(ciphertext, 0) = 1 THEN
            (get_byte(ciphertext, 1)::bigint << 24) | (get_byte(ciphertext, 2) << 16)
            | (get_byte(ciphertext, 3) << 8) | get_byte(ciphertext, 4)
        END
    $$;

-- An inline token is unpadded base64url: its first 8 characters are the first 6 bytes.
CREATE OR REPLACE FUNCTION login_etl.token_key_id(token text) RETURNS bigint
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$
        SELECT CASE WHEN token ~ '^[A-Za-z0-9_-]{8}' THEN
            login_etl.tink_key_id(decode(translate(left(token, 8), '-_', '+/'), 'base64'))
        END
    $$;

-- A vault entry whose token was made under an old key: rekey re-encrypts its ciphertext under
-- the primary (so it never needs the old key, and a row a stale worker still points at it with
-- stays revealable) and marks it retired, so that rows still holding its token are rekeyed too.
ALTER TABLE login_etl.masked_values ADD COLUMN IF NOT EXISTS retired boolean NOT NULL DEFAULT false;

-- A stored masked value of either kind: a vault token ("~…") needs the key of its ciphertext;
-- -1 for a retired one (its token is from an old key: the row needs rekeying).
CREATE OR REPLACE FUNCTION login_etl.masked_key_id(token text) RETURNS bigint
    LANGUAGE sql STABLE STRICT PARALLEL SAFE
    AS $$
        SELECT CASE WHEN left(token, 1) = '~' THEN
            (SELECT CASE WHEN v.retired THEN -1 ELSE login_etl.tink_key_id(v.ciphertext) END
             FROM login_etl.masked_values v WHERE v.token = masked_key_id.token)
        ELSE login_etl.token_key_id(token) END
    $$;
