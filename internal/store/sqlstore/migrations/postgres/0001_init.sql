-- OpenXAA schema v1 (PostgreSQL). Times are Unix milliseconds (UTC); JSON is TEXT.

CREATE TABLE replay (
    namespace  TEXT   NOT NULL,
    issuer     TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (namespace, issuer, jti)
);

CREATE INDEX replay_expires_at ON replay (expires_at);

CREATE TABLE tokens (
    issuer     TEXT   NOT NULL,
    jti        TEXT   NOT NULL,
    kind       TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    audience   TEXT   NOT NULL,
    resource   TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    parent_jti TEXT   NOT NULL,
    issued_at  BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT,
    PRIMARY KEY (issuer, jti)
);

CREATE INDEX tokens_parent_jti ON tokens (parent_jti) WHERE parent_jti <> '';
CREATE INDEX tokens_expires_at ON tokens (expires_at);

-- audit_events is append-only: seq and the hash chain are assigned while
-- holding a row lock on audit_head, and triggers refuse UPDATE, DELETE and
-- TRUNCATE. Grant the application role INSERT and SELECT only, if you can.
CREATE TABLE audit_events (
    seq        BIGINT PRIMARY KEY CHECK (seq > 0),
    time       BIGINT NOT NULL,
    type       TEXT   NOT NULL,
    actor      TEXT   NOT NULL,
    subject    TEXT   NOT NULL,
    client_id  TEXT   NOT NULL,
    outcome    TEXT   NOT NULL,
    rule       TEXT   NOT NULL,
    reason     TEXT   NOT NULL,
    request_id TEXT   NOT NULL,
    data       TEXT   NOT NULL,
    prev_hash  TEXT   NOT NULL,
    hash       TEXT   NOT NULL
);

CREATE INDEX audit_events_type ON audit_events (type, seq);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_client_id ON audit_events (client_id, seq);

CREATE FUNCTION audit_events_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_events is append-only' USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER audit_events_no_update_delete
    BEFORE UPDATE OR DELETE ON audit_events
    FOR EACH ROW EXECUTE FUNCTION audit_events_append_only();

CREATE TRIGGER audit_events_no_truncate
    BEFORE TRUNCATE ON audit_events
    FOR EACH STATEMENT EXECUTE FUNCTION audit_events_append_only();

-- audit_head holds the chain's tip; SELECT ... FOR UPDATE on it serializes
-- appends across every instance sharing the database.
CREATE TABLE audit_head (
    id   SMALLINT PRIMARY KEY CHECK (id = 1),
    seq  BIGINT   NOT NULL,
    hash TEXT     NOT NULL
);

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TABLE signing_keys (
    kid            TEXT   PRIMARY KEY,
    owner          TEXT   NOT NULL,
    algorithm      TEXT   NOT NULL,
    state          TEXT   NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired')),
    public_jwk     TEXT   NOT NULL,
    sealed_private BYTEA,
    created_at     BIGINT NOT NULL,
    activated_at   BIGINT,
    retire_after   BIGINT
);

CREATE INDEX signing_keys_owner ON signing_keys (owner, created_at);
-- At most one active (signing) key per owner.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (owner) WHERE state = 'active';

CREATE TABLE clients (
    realm         TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    auth_method   TEXT    NOT NULL,
    secret_digest BYTEA   CHECK (secret_digest IS NULL OR octet_length(secret_digest) = 32),
    jwks          TEXT,
    redirect_uris TEXT    NOT NULL,
    disabled      BOOLEAN NOT NULL,
    created_at    BIGINT  NOT NULL,
    PRIMARY KEY (realm, id)
);
