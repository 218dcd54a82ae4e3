-- OpenXAA schema v5 (SQLite): (client_id, subject) not-before fences of an
-- authorization server. A fence shares the revocation list's cursor
-- sequence with revoked tokens: both take MAX + 1 over the two tables in
-- the writing statement, and SQLite's single writer commits them in order.
-- '' in client_id or subject is the wildcard; never both.

CREATE TABLE fences (
    issuer     TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    not_before INTEGER NOT NULL,
    reason     TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    raised_at  INTEGER NOT NULL,
    seq        INTEGER NOT NULL CHECK (seq > 0),
    PRIMARY KEY (issuer, client_id, subject),
    CHECK (client_id <> '' OR subject <> '')
) STRICT, WITHOUT ROWID;

CREATE UNIQUE INDEX fences_seq ON fences (seq);

-- The revocation list reads one issuer's entries in cursor order.
CREATE INDEX fences_issuer_seq ON fences (issuer, seq);
CREATE INDEX tokens_issuer_revocation_seq ON tokens (issuer, revocation_seq) WHERE revocation_seq IS NOT NULL;
