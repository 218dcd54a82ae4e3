-- OpenXAA schema v7 (SQLite): one audit hash chain per stream.
--
-- Each stream (idp, authserver, gateway, ...) has its own head row in
-- audit_heads. id is a storage locator in insertion order (not hashed);
-- (stream, seq) is the record's place in its chain.
--
-- The records written before this migration become the closed stream
-- 'legacy', unchanged: same seq (also their id), same prev_hash and hash
-- under the v1 recipe, so any hash already quoted outside the database
-- still verifies. jti and parent_jti index data's "jti" and "idjag_jti"
-- for `xaa audit trace`.

CREATE TABLE audit_events_v7 (
    id         INTEGER PRIMARY KEY,
    stream     TEXT    NOT NULL,
    seq        INTEGER NOT NULL CHECK (seq > 0),
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
    hash       TEXT    NOT NULL,
    jti        TEXT    NOT NULL,
    parent_jti TEXT    NOT NULL,
    UNIQUE (stream, seq)
) STRICT;

INSERT INTO audit_events_v7 (id, stream, seq, time, type, actor, subject, client_id, outcome, rule, reason,
    request_id, data, prev_hash, hash, jti, parent_jti)
SELECT seq, 'legacy', seq, time, type, actor, subject, client_id, outcome, rule, reason,
    request_id, data, prev_hash, hash,
    COALESCE(CAST(json_extract(data, '$.jti') AS TEXT), ''),
    COALESCE(CAST(json_extract(data, '$.idjag_jti') AS TEXT), '')
FROM audit_events ORDER BY seq;

CREATE TABLE audit_heads (
    stream TEXT    PRIMARY KEY,
    seq    INTEGER NOT NULL CHECK (seq > 0),
    hash   TEXT    NOT NULL
) STRICT;

INSERT INTO audit_heads (stream, seq, hash)
SELECT 'legacy', seq, hash FROM audit_head WHERE seq > 0;

-- DROP TABLE drops the old triggers before its implicit DELETE, so none
-- fires.
DROP TABLE audit_head;
DROP TABLE audit_events;
ALTER TABLE audit_events_v7 RENAME TO audit_events;

CREATE INDEX audit_events_type ON audit_events (type, id);
CREATE INDEX audit_events_subject ON audit_events (subject, id);
CREATE INDEX audit_events_client_id ON audit_events (client_id, id);
CREATE INDEX audit_events_time ON audit_events (time);
CREATE INDEX audit_events_jti ON audit_events (jti) WHERE jti <> '';
CREATE INDEX audit_events_parent_jti ON audit_events (parent_jti) WHERE parent_jti <> '';

CREATE TRIGGER audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

CREATE TRIGGER audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN
    SELECT RAISE(ABORT, 'audit_events is append-only');
END;

-- A head row only ever moves forward; removing one would hide a stream.
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON audit_heads
BEGIN
    SELECT RAISE(ABORT, 'audit_heads rows must not be deleted');
END;
