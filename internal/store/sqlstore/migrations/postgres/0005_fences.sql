-- OpenXAA schema v5 (PostgreSQL): (client_id, subject) not-before fences of
-- an authorization server. A fence takes its cursor from
-- revocation_counter (0004), like a token revocation: the counter row's
-- lock is held until commit, so revocations and fences become visible in
-- cursor order. '' in client_id or subject is the wildcard; never both.

CREATE TABLE fences (
    issuer     TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    not_before BIGINT NOT NULL,
    reason     TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    raised_at  BIGINT NOT NULL,
    seq        BIGINT NOT NULL CHECK (seq > 0),
    PRIMARY KEY (issuer, client_id, subject),
    CHECK (client_id <> '' OR subject <> '')
);

CREATE UNIQUE INDEX fences_seq ON fences (seq);

-- The revocation list reads one issuer's entries in cursor order.
CREATE INDEX fences_issuer_seq ON fences (issuer, seq);
CREATE INDEX tokens_issuer_revocation_seq ON tokens (issuer, revocation_seq) WHERE revocation_seq IS NOT NULL;
