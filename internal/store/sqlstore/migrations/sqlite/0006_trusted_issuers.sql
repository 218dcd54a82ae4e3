-- OpenXAA schema v6 (SQLite): the trusted issuers of each authorization
-- server (realm), synced from the config at startup and read by every
-- instance. algorithms is a JSON array of strings.

CREATE TABLE trusted_issuers (
    realm                  TEXT    NOT NULL,
    issuer                 TEXT    NOT NULL,
    jwks_uri               TEXT    NOT NULL,
    algorithms             TEXT    NOT NULL,
    max_assertion_lifetime_ms INTEGER NOT NULL CHECK (max_assertion_lifetime_ms >= 0),
    allow_reuse            INTEGER NOT NULL CHECK (allow_reuse IN (0, 1)),
    disabled               INTEGER NOT NULL CHECK (disabled IN (0, 1)),
    created_at             INTEGER NOT NULL,
    updated_at             INTEGER NOT NULL,
    PRIMARY KEY (realm, issuer),
    CHECK (realm <> issuer)
) STRICT, WITHOUT ROWID;
