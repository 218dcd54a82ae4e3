-- OpenXAA schema v3 (SQLite): the IdP's single sign-on state. Secrets are
-- stored only as SHA-256 digests; times are Unix milliseconds (UTC); amr
-- is a JSON array as TEXT.

CREATE TABLE idp_sessions (
    id            TEXT    PRIMARY KEY,
    secret_digest BLOB    NOT NULL UNIQUE CHECK (length(secret_digest) = 32),
    user_id       TEXT    NOT NULL REFERENCES users (id),
    auth_time     INTEGER NOT NULL,
    acr           TEXT    NOT NULL,
    amr           TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    revoked_at    INTEGER
) STRICT;

CREATE INDEX idp_sessions_expires_at ON idp_sessions (expires_at);

CREATE TABLE idp_auth_codes (
    digest           BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    client_id        TEXT    NOT NULL,
    redirect_uri     TEXT    NOT NULL,
    user_id          TEXT    NOT NULL REFERENCES users (id),
    session_id       TEXT    NOT NULL,
    scope            TEXT    NOT NULL,
    nonce            TEXT    NOT NULL,
    code_challenge   TEXT    NOT NULL,
    auth_time        INTEGER NOT NULL,
    acr              TEXT    NOT NULL,
    amr              TEXT    NOT NULL,
    issued_at        INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL,
    consumed_at      INTEGER,
    refresh_family   TEXT    NOT NULL DEFAULT '',
    id_token_jti     TEXT    NOT NULL DEFAULT '',
    access_token_jti TEXT    NOT NULL DEFAULT ''
) STRICT, WITHOUT ROWID;

CREATE INDEX idp_auth_codes_expires_at ON idp_auth_codes (expires_at);

CREATE TABLE idp_refresh_tokens (
    digest        BLOB    PRIMARY KEY CHECK (length(digest) = 32),
    family_id     TEXT    NOT NULL,
    client_id     TEXT    NOT NULL,
    user_id       TEXT    NOT NULL REFERENCES users (id),
    session_id    TEXT    NOT NULL,
    scope         TEXT    NOT NULL,
    auth_time     INTEGER NOT NULL,
    acr           TEXT    NOT NULL,
    amr           TEXT    NOT NULL,
    issued_at     INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL,
    superseded_at INTEGER,
    revoked_at    INTEGER
) STRICT, WITHOUT ROWID;

CREATE INDEX idp_refresh_tokens_family ON idp_refresh_tokens (family_id);
CREATE INDEX idp_refresh_tokens_expires_at ON idp_refresh_tokens (expires_at);
