-- OpenXAA schema v10 (SQLite): the connection ledger.
--
-- connections gains the statuses 'denied' (a request refused; final, like
-- 'revoked') and 'expired' (its recertification date passed; recertifying
-- approves it again), who requested it and the reason of its latest
-- status change. SQLite cannot change a CHECK in place, so the table is
-- rebuilt; nothing references it.
--
-- ledger_history is the append-only history of every ledger change;
-- set_outbox the Security Event Tokens (RFC 8417) each change queues for
-- the affected authorization servers, written in the same transaction and
-- pushed (RFC 8935) by the IdP; revocation_polls when each client of an
-- authorization server last read its revocation list (evidence that a
-- gateway has picked up a fence).

CREATE TABLE connections_v10 (
    id                       TEXT    PRIMARY KEY,
    app_realm                TEXT    NOT NULL CHECK (app_realm = 'idp'),
    app_id                   TEXT    NOT NULL,
    resource_uri             TEXT    NOT NULL REFERENCES resources (uri),
    group_scopes             TEXT    NOT NULL,
    step_up                  TEXT    NOT NULL,
    id_jag_lifetime_ms       INTEGER NOT NULL CHECK (id_jag_lifetime_ms > 0),
    access_token_lifetime_ms INTEGER NOT NULL CHECK (access_token_lifetime_ms >= id_jag_lifetime_ms),
    include_email            INTEGER NOT NULL CHECK (include_email IN (0, 1)),
    status                   TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'denied', 'suspended', 'revoked', 'expired')),
    approver                 TEXT    NOT NULL,
    justification            TEXT    NOT NULL,
    created_at               INTEGER NOT NULL,
    updated_at               INTEGER NOT NULL,
    expires_at               INTEGER,
    revoked_at               INTEGER,
    requester                TEXT    NOT NULL,
    status_reason            TEXT    NOT NULL,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    FOREIGN KEY (app_realm, app_id) REFERENCES clients (realm, id)
) STRICT;

INSERT INTO connections_v10 (id, app_realm, app_id, resource_uri, group_scopes, step_up, id_jag_lifetime_ms,
    access_token_lifetime_ms, include_email, status, approver, justification, created_at, updated_at,
    expires_at, revoked_at, requester, status_reason)
SELECT id, app_realm, app_id, resource_uri, group_scopes, step_up, id_jag_lifetime_ms,
    access_token_lifetime_ms, include_email, status, approver, justification, created_at, updated_at,
    expires_at, revoked_at, '', ''
FROM connections;

DROP TABLE connections;
ALTER TABLE connections_v10 RENAME TO connections;

-- At most one live connection per app and resource: revoked and denied
-- rows are records only.
CREATE UNIQUE INDEX connections_one_live ON connections (app_id, resource_uri) WHERE status NOT IN ('revoked', 'denied');
CREATE INDEX connections_app ON connections (app_id, created_at);
CREATE INDEX connections_resource ON connections (resource_uri, created_at);
-- The ledger's keyset pages, one per sort order; a connection without a
-- recertification date sorts after every dated one.
CREATE INDEX connections_created ON connections (created_at, id);
CREATE INDEX connections_updated ON connections (updated_at, id);
CREATE INDEX connections_expires ON connections (COALESCE(expires_at, 253402300799999), id);

CREATE TABLE ledger_history (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    time          INTEGER NOT NULL,
    action        TEXT    NOT NULL,
    connection_id TEXT    NOT NULL,
    app_id        TEXT    NOT NULL,
    user_id       TEXT    NOT NULL,
    group_name    TEXT    NOT NULL,
    from_status   TEXT    NOT NULL,
    to_status     TEXT    NOT NULL,
    actor_id      TEXT    NOT NULL,
    actor_kind    TEXT    NOT NULL,
    reason        TEXT    NOT NULL,
    data          TEXT    NOT NULL
) STRICT;

CREATE INDEX ledger_history_connection ON ledger_history (connection_id, seq) WHERE connection_id <> '';
CREATE INDEX ledger_history_user ON ledger_history (user_id, action, seq) WHERE user_id <> '';
CREATE INDEX ledger_history_app ON ledger_history (app_id, action, seq) WHERE app_id <> '';

CREATE TRIGGER ledger_history_no_update BEFORE UPDATE ON ledger_history
BEGIN
    SELECT RAISE(ABORT, 'ledger_history is append-only');
END;

CREATE TRIGGER ledger_history_no_delete BEFORE DELETE ON ledger_history
BEGIN
    SELECT RAISE(ABORT, 'ledger_history is append-only');
END;

CREATE TABLE set_outbox (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    jti             TEXT    NOT NULL UNIQUE,
    audience        TEXT    NOT NULL,
    subject         TEXT    NOT NULL,
    client_id       TEXT    NOT NULL,
    connection_id   TEXT    NOT NULL,
    reason          TEXT    NOT NULL,
    not_before      INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    ledger_seq      INTEGER NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        INTEGER NOT NULL CHECK (attempts >= 0),
    next_attempt_at INTEGER NOT NULL,
    last_error      TEXT    NOT NULL,
    delivered_at    INTEGER,
    CHECK (subject <> '' OR client_id <> ''),
    CHECK ((status = 'delivered') = (delivered_at IS NOT NULL))
) STRICT;

CREATE INDEX set_outbox_due ON set_outbox (next_attempt_at, id) WHERE status = 'pending';
CREATE INDEX set_outbox_connection ON set_outbox (connection_id, id) WHERE connection_id <> '';
CREATE INDEX set_outbox_audience ON set_outbox (audience, id);

CREATE TABLE revocation_polls (
    issuer    TEXT    NOT NULL,
    client_id TEXT    NOT NULL,
    resources TEXT    NOT NULL,
    polled_at INTEGER NOT NULL,
    cursor    INTEGER NOT NULL,
    PRIMARY KEY (issuer, client_id)
) STRICT, WITHOUT ROWID;
