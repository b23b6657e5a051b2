-- One row per recovery of plaintext (`reveal`, `quarantine show`): who asked, why, and how many
-- values. Only counts: never a value, a token or a message id, since each points at PII.
CREATE TABLE IF NOT EXISTS login_etl.reveal_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at          timestamptz NOT NULL DEFAULT now(),
    requester   text NOT NULL CHECK (btrim(requester) <> ''),
    os_user     text NOT NULL,
    db_user     text NOT NULL DEFAULT current_user,
    action      text NOT NULL CHECK (action IN ('reveal', 'quarantine show')),
    field       text CHECK (field IN ('ip', 'device_id', 'body')),
    value_count integer NOT NULL CHECK (value_count >= 0),
    reason      text NOT NULL CHECK (reason <> '' AND btrim(reason) <> '')
);
