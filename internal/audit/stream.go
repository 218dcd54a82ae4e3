package audit

import (
	"errors"
	"fmt"
	"strings"
)

// Streams. Every audit record belongs to one stream, and each stream is its
// own hash chain with its own sequence and head, so records of different
// streams never wait for one another's chain-head lock. A stream is named
// after the role (or the kind of actor) that writes it; StreamOf derives it
// from the record's type.
const (
	// StreamIdP holds the IdP's records: SSO logins and codes (sso.*),
	// its token endpoint (token.*) and ID-JAG exchanges, allowed or
	// denied (idjag.*), and security events it sends (set.*).
	StreamIdP = "idp"
	// StreamAuthServer holds the resource authorization server's records:
	// redemptions, revocations and introspection (accesstoken.*) and
	// not-before fences (fence.*).
	StreamAuthServer = "authserver"
	// StreamGateway holds the MCP gateway's tool-call decisions (gateway.*).
	StreamGateway = "gateway"
	// StreamDirectory holds changes to users, groups and apps (directory.*,
	// user.*, group.*, app.*), such as those a seed file applies.
	StreamDirectory = "directory"
	// StreamAdmin holds what administrators do (admin.*) and the
	// connection ledger's lifecycle (connection.*).
	StreamAdmin = "admin"
	// StreamSystem holds signing-key lifecycle records (key.*) and every
	// type no other stream claims.
	StreamSystem = "system"
	// StreamLegacy holds the records written before per-stream chains
	// (schema 0007): one chain in their original order, with their
	// original sequence numbers and hashes (recipe v1), so that any hash
	// already quoted outside the database still verifies. It is closed:
	// nothing is appended to it.
	StreamLegacy = "legacy"
)

// streamByPrefix maps the part of an event type before its first dot to
// its stream.
var streamByPrefix = map[string]string{
	"sso":         StreamIdP,
	"token":       StreamIdP,
	"idjag":       StreamIdP,
	"set":         StreamIdP,
	"accesstoken": StreamAuthServer,
	"fence":       StreamAuthServer,
	"gateway":     StreamGateway,
	"directory":   StreamDirectory,
	"user":        StreamDirectory,
	"group":       StreamDirectory,
	"app":         StreamDirectory,
	"admin":       StreamAdmin,
	"connection":  StreamAdmin,
	"key":         StreamSystem,
}

// StreamOf returns the stream of an event type: by the type's prefix
// before the first dot (see the Stream constants), StreamSystem for any
// other type.
func StreamOf(eventType string) string {
	prefix, _, _ := strings.Cut(eventType, ".")
	if s, ok := streamByPrefix[prefix]; ok {
		return s
	}
	return StreamSystem
}

// ErrInvalidStream means a stream name cannot be appended to.
var ErrInvalidStream = errors.New("audit: invalid stream")

// MaxStreamName bounds a stream name.
const MaxStreamName = 32

// CheckStream reports whether records may be appended to the named
// stream: 1 to 32 characters of a-z, 0-9, "_" and "-", starting with a
// letter, and not the closed legacy stream.
func CheckStream(name string) error {
	if !validStreamName(name) {
		return fmt.Errorf("%w: %q is not 1 to %d characters of a-z, 0-9, _ and -, starting with a letter", ErrInvalidStream, clipName(name), MaxStreamName)
	}
	if name == StreamLegacy {
		return fmt.Errorf("%w: the %s stream is closed; nothing is appended to it", ErrInvalidStream, StreamLegacy)
	}
	return nil
}

func validStreamName(name string) bool {
	if len(name) == 0 || len(name) > MaxStreamName || name[0] < 'a' || name[0] > 'z' {
		return false
	}
	for i := range len(name) {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func clipName(s string) string {
	if len(s) > 2*MaxStreamName {
		return s[:2*MaxStreamName] + "..."
	}
	return s
}
