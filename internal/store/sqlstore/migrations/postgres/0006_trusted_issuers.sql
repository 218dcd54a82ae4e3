-- OpenXAA schema v6 (PostgreSQL): the trusted issuers of each
-- authorization server (realm), synced from the config at startup and read
-- by every instance. algorithms is a JSON array of strings.

CREATE TABLE trusted_issuers (
    realm                  TEXT    NOT NULL,
    issuer                 TEXT    NOT NULL,
    jwks_uri               TEXT    NOT NULL,
    algorithms             TEXT    NOT NULL,
    max_assertion_lifetime_ms BIGINT NOT NULL CHECK (max_assertion_lifetime_ms >= 0),
    allow_reuse            BOOLEAN NOT NULL,
    disabled               BOOLEAN NOT NULL,
    created_at             BIGINT  NOT NULL,
    updated_at             BIGINT  NOT NULL,
    PRIMARY KEY (realm, issuer),
    CHECK (realm <> issuer)
);
