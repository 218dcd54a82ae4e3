-- OpenXAA schema v4 (PostgreSQL): a revocation cursor for the gateways'
-- revocation list. revocation_counter is a single row whose lock is held
-- by each revoking transaction until it commits, so cursors become visible
-- in increasing order (a plain sequence can commit out of order, and a
-- poller would skip the smaller value).

CREATE TABLE revocation_counter (
    id BIGINT PRIMARY KEY CHECK (id = 1),
    n  BIGINT NOT NULL
);

INSERT INTO revocation_counter (id, n) VALUES (1, 0);

ALTER TABLE tokens ADD COLUMN revocation_seq BIGINT;

CREATE UNIQUE INDEX tokens_revocation_seq ON tokens (revocation_seq) WHERE revocation_seq IS NOT NULL;
