-- Archive parts whose rows left (or came back to) this database, written in the same
-- transaction as the DELETE (or the COPY): the commit point that `archive` and `restore` resume
-- from. A manifest alone cannot say whether the delete that followed it committed.
CREATE TABLE IF NOT EXISTS login_etl.archived_parts (
    source       text NOT NULL,   -- 'user_logins' or 'rejected_messages'
    day          date NOT NULL,
    part         text NOT NULL,   -- the file name inside the day's directory
    rows         bigint NOT NULL,
    row_checksum text NOT NULL,
    state        text NOT NULL CHECK (state IN ('archived', 'restored')),
    changed_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, day, part)
);
