-- OpenXAA schema v2 (PostgreSQL): the IdP's directory. Times are Unix
-- milliseconds (UTC), durations milliseconds, JSON is TEXT. Nothing here is
-- ever deleted: users are disabled, connections revoked.

-- username_key is the ASCII-lowercased username (usernames are ASCII), so
-- uniqueness and lookup ignore case while username keeps the spelling.
CREATE TABLE users (
    id            TEXT    PRIMARY KEY,
    username      TEXT    NOT NULL,
    username_key  TEXT    NOT NULL UNIQUE CHECK (username_key = lower(username)),
    email         TEXT    NOT NULL,
    display_name  TEXT    NOT NULL,
    password_hash TEXT    NOT NULL,
    totp_sealed   BYTEA,
    disabled      BOOLEAN NOT NULL,
    created_at    BIGINT  NOT NULL,
    updated_at    BIGINT  NOT NULL
);

CREATE TABLE directory_groups (
    name        TEXT    PRIMARY KEY,
    description TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE TABLE group_members (
    group_name TEXT    NOT NULL REFERENCES directory_groups (name),
    user_id    TEXT    NOT NULL REFERENCES users (id),
    added_at   BIGINT  NOT NULL,
    PRIMARY KEY (group_name, user_id)
);

CREATE INDEX group_members_user ON group_members (user_id, group_name);

CREATE TABLE auth_servers (
    issuer     TEXT    PRIMARY KEY,
    name       TEXT    NOT NULL,
    created_at BIGINT  NOT NULL,
    updated_at BIGINT  NOT NULL
);

-- The client_id each requesting app (a client in realm 'idp') holds at an
-- authorization server. Two apps never share one there: the ID-JAG's
-- client_id claim must name exactly one app.
CREATE TABLE auth_server_clients (
    issuer    TEXT NOT NULL REFERENCES auth_servers (issuer),
    app_realm TEXT NOT NULL CHECK (app_realm = 'idp'),
    app_id    TEXT NOT NULL,
    client_id TEXT NOT NULL,
    PRIMARY KEY (issuer, app_id),
    UNIQUE (issuer, client_id),
    FOREIGN KEY (app_realm, app_id) REFERENCES clients (realm, id)
);

CREATE TABLE resources (
    uri         TEXT    PRIMARY KEY,
    name        TEXT    NOT NULL,
    auth_server TEXT    NOT NULL REFERENCES auth_servers (issuer),
    scopes      TEXT    NOT NULL,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL
);

CREATE INDEX resources_auth_server ON resources (auth_server, uri);

CREATE TABLE connections (
    id                       TEXT    PRIMARY KEY,
    app_realm                TEXT    NOT NULL CHECK (app_realm = 'idp'),
    app_id                   TEXT    NOT NULL,
    resource_uri             TEXT    NOT NULL REFERENCES resources (uri),
    group_scopes             TEXT    NOT NULL,
    step_up                  TEXT    NOT NULL,
    id_jag_lifetime_ms       BIGINT  NOT NULL CHECK (id_jag_lifetime_ms > 0),
    access_token_lifetime_ms BIGINT  NOT NULL CHECK (access_token_lifetime_ms >= id_jag_lifetime_ms),
    include_email            BOOLEAN NOT NULL,
    status                   TEXT    NOT NULL CHECK (status IN ('pending', 'approved', 'suspended', 'revoked')),
    approver                 TEXT    NOT NULL,
    justification            TEXT    NOT NULL,
    created_at               BIGINT  NOT NULL,
    updated_at               BIGINT  NOT NULL,
    expires_at               BIGINT,
    revoked_at               BIGINT,
    CHECK ((status = 'revoked') = (revoked_at IS NOT NULL)),
    FOREIGN KEY (app_realm, app_id) REFERENCES clients (realm, id)
);

-- At most one connection per app and resource is not revoked.
CREATE UNIQUE INDEX connections_one_live ON connections (app_id, resource_uri) WHERE status <> 'revoked';
CREATE INDEX connections_app ON connections (app_id, created_at);
CREATE INDEX connections_resource ON connections (resource_uri, created_at);
