package audit

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// A Checkpoint is a signed statement that a stream had Seq records, the
// last of which hashed to Hash, at Time. Checkpoints are written outside
// the database (a file, syslog) and signed with a key that is not in the
// database, so someone who can rewrite the database cannot rewrite them:
// a verifier holding them detects a truncated tail or a rewritten chain
// that the chain alone cannot show.
type Checkpoint struct {
	Stream string
	Seq    int64
	Hash   string
	Time   time.Time // millisecond precision
	KeyID  string    // KeyID of the signing key
	Sig    []byte    // Ed25519 over SignedMessage
}

// checkpointTag versions the signed encoding.
const checkpointTag = "openxaa.audit.checkpoint.v1"

// ErrBadSignature means a checkpoint's signature does not verify.
var ErrBadSignature = errors.New("audit: checkpoint signature does not verify")

// SignedMessage is what a checkpoint's signature covers: the tag
// "openxaa.audit.checkpoint.v1", Stream, Seq, Hash and Time (Unix
// milliseconds), encoded like a record (8-byte big-endian integers,
// length-prefixed strings).
func (c *Checkpoint) SignedMessage() []byte {
	b := appendString(nil, checkpointTag)
	b = appendString(b, c.Stream)
	b = binary.BigEndian.AppendUint64(b, uint64(c.Seq))
	b = appendString(b, c.Hash)
	return binary.BigEndian.AppendUint64(b, uint64(c.Time.UnixMilli()))
}

// SignCheckpoint signs the head h as of t.
func SignCheckpoint(key ed25519.PrivateKey, h store.AuditHead, t time.Time) Checkpoint {
	c := Checkpoint{Stream: h.Stream, Seq: h.Seq, Hash: h.Hash, Time: time.UnixMilli(t.UnixMilli()).UTC(),
		KeyID: KeyID(key.Public().(ed25519.PublicKey))}
	c.Sig = ed25519.Sign(key, c.SignedMessage())
	return c
}

// Verify checks c's signature against pub.
func (c *Checkpoint) Verify(pub ed25519.PublicKey) error {
	if len(pub) != ed25519.PublicKeySize || !ed25519.Verify(pub, c.SignedMessage(), c.Sig) {
		return ErrBadSignature
	}
	return nil
}

// KeyID names a checkpoint public key: the first 16 hex digits of the
// SHA-256 of its 32 raw bytes.
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

type checkpointLine struct {
	V      int    `json:"v"`
	Stream string `json:"stream"`
	Seq    int64  `json:"seq"`
	Hash   string `json:"hash"`
	TimeMS int64  `json:"time_ms"`
	KeyID  string `json:"key_id"`
	Sig    string `json:"sig"` // base64url, unpadded
}

var checkpointKeys = []string{"v", "stream", "seq", "hash", "time_ms", "key_id", "sig"}

// MarshalCheckpoint encodes c as one JSON line, ending in "\n".
func MarshalCheckpoint(c Checkpoint) ([]byte, error) {
	return marshalLine(checkpointLine{V: 1, Stream: c.Stream, Seq: c.Seq, Hash: c.Hash, TimeMS: c.Time.UnixMilli(),
		KeyID: c.KeyID, Sig: base64.RawURLEncoding.EncodeToString(c.Sig)})
}

// ParseCheckpoint decodes one checkpoint line strictly. It does not check
// the signature.
func ParseCheckpoint(line []byte) (Checkpoint, error) {
	o, err := newObjectReader(line)
	if err != nil {
		return Checkpoint{}, err
	}
	var c Checkpoint
	for {
		key, ok, err := o.next()
		if err != nil {
			return Checkpoint{}, err
		}
		if !ok {
			break
		}
		var n int64
		var s string
		switch key {
		case "v":
			n, err = o.int(key)
			if err == nil && n != 1 {
				err = fmt.Errorf("%w: checkpoint v must be 1, got %d", ErrMalformed, n)
			}
		case "stream":
			c.Stream, err = o.str(key)
		case "seq":
			c.Seq, err = o.int(key)
		case "hash":
			c.Hash, err = o.str(key)
		case "time_ms":
			n, err = o.int(key)
			c.Time = time.UnixMilli(n).UTC()
		case "key_id":
			c.KeyID, err = o.str(key)
		case "sig":
			s, err = o.str(key)
			if err == nil {
				c.Sig, err = base64.RawURLEncoding.Strict().DecodeString(s)
				if err != nil || len(c.Sig) != ed25519.SignatureSize {
					err = fmt.Errorf("%w: sig must be %d bytes, base64url without padding", ErrMalformed, ed25519.SignatureSize)
				}
			}
		default:
			err = fmt.Errorf("%w: unknown member %q", ErrMalformed, clipName(key))
		}
		if err != nil {
			return Checkpoint{}, err
		}
	}
	if err := o.require(checkpointKeys); err != nil {
		return Checkpoint{}, err
	}
	if c.Seq < 1 || !validStreamName(c.Stream) {
		return Checkpoint{}, fmt.Errorf("%w: a checkpoint needs a stream name and a seq of at least 1", ErrMalformed)
	}
	return c, nil
}

// ReadCheckpoints reads a checkpoint file (JSON lines; blank lines are
// skipped) and verifies every signature against keys, choosing the key by
// the line's key_id. Any line that does not parse, names an unknown key or
// does not verify is an error naming the line: a checkpoint file is
// evidence, and a bad line in it means it was tampered with.
func ReadCheckpoints(r io.Reader, name string, keys []ed25519.PublicKey) ([]Checkpoint, error) {
	return readCheckpoints(r, name, keys, func(line []byte) []byte { return line })
}

// ReadSyslogCheckpoints reads checkpoints from a syslog file: the lines
// tagged SyslogTag, from their first "{"; other lines are skipped. Each
// checkpoint line is then held to ReadCheckpoints' rules.
func ReadSyslogCheckpoints(r io.Reader, name string, keys []ed25519.PublicKey) ([]Checkpoint, error) {
	return readCheckpoints(r, name, keys, extractSyslogLine)
}

func readCheckpoints(r io.Reader, name string, keys []ed25519.PublicKey, extract func([]byte) []byte) ([]Checkpoint, error) {
	byID := make(map[string]ed25519.PublicKey, len(keys))
	for _, k := range keys {
		byID[KeyID(k)] = k
	}
	var out []Checkpoint
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), MaxLine)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(extract(sc.Bytes()))
		if len(line) == 0 {
			continue
		}
		c, err := ParseCheckpoint(line)
		if err != nil {
			return nil, fmt.Errorf("%s:%d: %w", name, n, err)
		}
		pub, ok := byID[c.KeyID]
		if !ok {
			return nil, fmt.Errorf("%s:%d: checkpoint signed by key %q, which is not among the public keys given", name, n, clipName(c.KeyID))
		}
		if err := c.Verify(pub); err != nil {
			return nil, fmt.Errorf("%s:%d: stream %s seq %d: %w", name, n, c.Stream, c.Seq, err)
		}
		out = append(out, c)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
