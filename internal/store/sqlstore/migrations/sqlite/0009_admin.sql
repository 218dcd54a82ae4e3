-- OpenXAA schema v9 (SQLite): the admin API's sessions and tokens, and
-- indexes for its directory listings (keyset pages in each sort order).
-- Session cookies and admin tokens are stored only as SHA-256 digests;
-- times are Unix milliseconds (UTC).

CREATE TABLE admin_sessions (
    id            TEXT    PRIMARY KEY,
    secret_digest BLOB    NOT NULL UNIQUE CHECK (length(secret_digest) = 32),
    user_id       TEXT    NOT NULL REFERENCES users (id),
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL CHECK (expires_at > created_at),
    revoked_at    INTEGER
) STRICT;

CREATE INDEX admin_sessions_expires_at ON admin_sessions (expires_at);

CREATE TABLE admin_tokens (
    id            TEXT    PRIMARY KEY,
    secret_digest BLOB    NOT NULL UNIQUE CHECK (length(secret_digest) = 32),
    role          TEXT    NOT NULL,
    description   TEXT    NOT NULL,
    created_by    TEXT    NOT NULL,
    created_at    INTEGER NOT NULL,
    expires_at    INTEGER NOT NULL CHECK (expires_at > created_at),
    revoked_at    INTEGER
) STRICT;

CREATE INDEX admin_tokens_expires_at ON admin_tokens (expires_at);

CREATE INDEX users_created ON users (created_at, id);
CREATE INDEX users_updated ON users (updated_at, id);
CREATE INDEX clients_name ON clients (realm, name, id);
CREATE INDEX clients_created ON clients (realm, created_at, id);
CREATE INDEX directory_groups_created ON directory_groups (created_at, name);
CREATE INDEX directory_groups_updated ON directory_groups (updated_at, name);
CREATE INDEX resources_name ON resources (name, uri);
CREATE INDEX resources_created ON resources (created_at, uri);
CREATE INDEX resources_updated ON resources (updated_at, uri);
