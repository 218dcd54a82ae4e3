-- OpenXAA schema v4 (SQLite): a revocation cursor for the gateways'
-- revocation list. SQLite has one writer at a time, so MAX + 1 in the
-- revoking statement is assigned and committed in order.

ALTER TABLE tokens ADD COLUMN revocation_seq INTEGER;

CREATE UNIQUE INDEX tokens_revocation_seq ON tokens (revocation_seq) WHERE revocation_seq IS NOT NULL;
