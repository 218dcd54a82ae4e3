-- OpenXAA schema v1 (SQLite). Times are Unix milliseconds (UTC); JSON is TEXT.

CREATE TABLE replay (
    namespace  TEXT    NOT NULL,
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    expires_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, issuer, jti)
) STRICT, WITHOUT ROWID;

CREATE INDEX replay_expires_at ON replay (expires_at);

CREATE TABLE tokens (
    issuer     TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    kind       TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    audience   TEXT    NOT NULL,
    resource   TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    parent_jti TEXT    NOT NULL,
    issued_at  INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    revoked_at INTEGER,
    PRIMARY KEY (issuer, jti)
) STRICT;

CREATE INDEX tokens_parent_jti ON tokens (parent_jti) WHERE parent_jti <> '';
CREATE INDEX tokens_expires_at ON tokens (expires_at);

-- audit_events is append-only: seq and the hash chain are assigned under the
-- write lock from audit_head, and triggers refuse UPDATE and DELETE.
CREATE TABLE audit_events (
    seq        INTEGER PRIMARY KEY CHECK (seq > 0),
    time       INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    actor      TEXT    NOT NULL,
    subject    TEXT    NOT NULL,
    client_id  TEXT    NOT NULL,
    outcome    TEXT    NOT NULL,
    rule       TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    request_id TEXT    NOT NULL,
    data       TEXT    NOT NULL,
    prev_hash  TEXT    NOT NULL,
    hash       TEXT    NOT NULL
) STRICT;

CREATE INDEX audit_events_type ON audit_events (type, seq);
CREATE INDEX audit_events_subject ON audit_events (subject, seq);
CREATE INDEX audit_events_client_id ON audit_events (client_id, seq);

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- audit_head holds the chain's tip; locking it serializes appends.
CREATE TABLE audit_head (
    id   INTEGER PRIMARY KEY CHECK (id = 1),
    seq  INTEGER NOT NULL,
    hash TEXT    NOT NULL
) STRICT;

INSERT INTO audit_head (id, seq, hash)
VALUES (1, 0, '0000000000000000000000000000000000000000000000000000000000000000');

CREATE TRIGGER audit_head_no_delete BEFORE DELETE ON audit_head
BEGIN
    SELECT RAISE(ABORT, 'audit_head must not be deleted');
END;

CREATE TABLE signing_keys (
    kid            TEXT    PRIMARY KEY,
    owner          TEXT    NOT NULL,
    algorithm      TEXT    NOT NULL,
    state          TEXT    NOT NULL CHECK (state IN ('next', 'active', 'retiring', 'retired')),
    public_jwk     TEXT    NOT NULL,
    sealed_private BLOB,
    created_at     INTEGER NOT NULL,
    activated_at   INTEGER,
    retire_after   INTEGER
) STRICT;

CREATE INDEX signing_keys_owner ON signing_keys (owner, created_at);
-- At most one active (signing) key per owner.
CREATE UNIQUE INDEX signing_keys_one_active ON signing_keys (owner) WHERE state = 'active';

CREATE TABLE clients (
    realm         TEXT    NOT NULL,
    id            TEXT    NOT NULL,
    name          TEXT    NOT NULL,
    auth_method   TEXT    NOT NULL,
    secret_digest BLOB    CHECK (secret_digest IS NULL OR length(secret_digest) = 32),
    jwks          TEXT,
    redirect_uris TEXT    NOT NULL,
    disabled      INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at    INTEGER NOT NULL,
    PRIMARY KEY (realm, id)
) STRICT;
