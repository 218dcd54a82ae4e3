-- OpenXAA schema v10 (PostgreSQL): the connection ledger.
--
-- connections gains the statuses 'denied' (a request refused; final, like
-- 'revoked') and 'expired' (its recertification date passed; recertifying
-- approves it again), who requested it and the reason of its latest
-- status change. The status checks of 0002 had generated names, so they
-- are found by their definition and replaced with named ones.
--
-- ledger_history is the append-only history of every ledger change;
-- set_outbox the Security Event Tokens (RFC 8417) each change queues for
-- the affected authorization servers, written in the same transaction and
-- pushed (RFC 8935) by the IdP; revocation_polls when each client of an
-- authorization server last read its revocation list (evidence that a
-- gateway has picked up a fence).

DO $$
DECLARE r record;
BEGIN
    FOR r IN SELECT conname FROM pg_constraint
        WHERE conrelid = 'connections'::regclass AND contype = 'c' AND pg_get_constraintdef(oid) LIKE '%status%'
    LOOP
        EXECUTE format('ALTER TABLE connections DROP CONSTRAINT %I', r.conname);
    END LOOP;
END;
$$;

ALTER TABLE connections
    ADD COLUMN requester TEXT NOT NULL DEFAULT '',
    ADD COLUMN status_reason TEXT NOT NULL DEFAULT '',
    ADD CONSTRAINT connections_status CHECK (status IN ('pending', 'approved', 'denied', 'suspended', 'revoked', 'expired')),
    ADD CONSTRAINT connections_revoked_at CHECK ((status = 'revoked') = (revoked_at IS NOT NULL));
ALTER TABLE connections ALTER COLUMN requester DROP DEFAULT, ALTER COLUMN status_reason DROP DEFAULT;

-- At most one live connection per app and resource: revoked and denied
-- rows are records only.
DROP INDEX connections_one_live;
CREATE UNIQUE INDEX connections_one_live ON connections (app_id, resource_uri) WHERE status NOT IN ('revoked', 'denied');
-- The ledger's keyset pages, one per sort order; a connection without a
-- recertification date sorts after every dated one.
CREATE INDEX connections_created ON connections (created_at, id);
CREATE INDEX connections_updated ON connections (updated_at, id);
CREATE INDEX connections_expires ON connections ((COALESCE(expires_at, 253402300799999)), id);

CREATE TABLE ledger_history (
    seq           BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    time          BIGINT NOT NULL,
    action        TEXT   NOT NULL,
    connection_id TEXT   NOT NULL,
    app_id        TEXT   NOT NULL,
    user_id       TEXT   NOT NULL,
    group_name    TEXT   NOT NULL,
    from_status   TEXT   NOT NULL,
    to_status     TEXT   NOT NULL,
    actor_id      TEXT   NOT NULL,
    actor_kind    TEXT   NOT NULL,
    reason        TEXT   NOT NULL,
    data          TEXT   NOT NULL
);

CREATE INDEX ledger_history_connection ON ledger_history (connection_id, seq) WHERE connection_id <> '';
CREATE INDEX ledger_history_user ON ledger_history (user_id, action, seq) WHERE user_id <> '';
CREATE INDEX ledger_history_app ON ledger_history (app_id, action, seq) WHERE app_id <> '';

CREATE FUNCTION ledger_history_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger_history is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER ledger_history_no_update_delete
    BEFORE UPDATE OR DELETE ON ledger_history
    FOR EACH ROW EXECUTE FUNCTION ledger_history_append_only();

CREATE TRIGGER ledger_history_no_truncate
    BEFORE TRUNCATE ON ledger_history
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_history_append_only();

CREATE TABLE set_outbox (
    id              BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    jti             TEXT   NOT NULL UNIQUE,
    audience        TEXT   NOT NULL,
    subject         TEXT   NOT NULL,
    client_id       TEXT   NOT NULL,
    connection_id   TEXT   NOT NULL,
    reason          TEXT   NOT NULL,
    not_before      BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    ledger_seq      BIGINT NOT NULL,
    status          TEXT   NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        BIGINT NOT NULL CHECK (attempts >= 0),
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT   NOT NULL,
    delivered_at    BIGINT,
    CHECK (subject <> '' OR client_id <> ''),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
);

CREATE INDEX set_outbox_due ON set_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX set_outbox_connection ON set_outbox (connection_id, id) WHERE connection_id <> '';
CREATE INDEX set_outbox_audience ON set_outbox (audience, id);

CREATE TABLE revocation_polls (
    issuer    TEXT   NOT NULL,
    client_id TEXT   NOT NULL,
    resources TEXT   NOT NULL,
    polled_at BIGINT NOT NULL,
    cursor    BIGINT NOT NULL,
    PRIMARY KEY (issuer, client_id)
);
