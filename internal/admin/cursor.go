package admin

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
	"unicode/utf8"
)

// Cursors are opaque to clients and trusted by nobody: a cursor is the
// binary encoding of typed values (the listing, its order, a hash of the
// filters it was issued under, and the position of the last row seen),
// followed by an HMAC-SHA256 under a key that exists only on the server.
// The MAC is checked before anything is decoded, so a forged or altered
// cursor is refused without being parsed, and a decoded position only
// ever becomes a bound parameter (threat model §9; Hydra's forgeable
// pagination tokens, CVE-2026-33504).
//
// Layout (before base64url without padding):
//
//	version (1) = 1
//	len(list) (1) | list
//	len(sort) (1) | sort
//	flags (1): bit 0 descending, bit 1 Time set
//	filter hash (8)
//	time, Unix milliseconds (8, big-endian; 0 unless bit 1)
//	num (8, big-endian, signed)
//	uvarint len | text
//	uvarint len | id
//	HMAC-SHA256 of everything above (32)

// position is where the next page starts: the last row's sort value (a
// time, a number or a text) and its unique key.
type position struct {
	Time time.Time // millisecond precision; zero when unused
	Num  int64
	Text string
	ID   string
}

const (
	cursorVersion = 1
	macSize       = sha256.Size
	// maxCursorLen bounds an encoded cursor before any work is done.
	maxCursorLen = 2048
	maxCursorStr = 1024
)

// errCursor is every cursor refusal; the message is the same for all, so
// a caller learns nothing about which check failed.
var errCursor = errors.New("admin: cursor is not valid")

func cursorRefused() *apiError {
	return badRequest("the cursor is not valid here: it was changed, forged, or issued for another listing, order or filter; start again without it")
}

// cursorCodec seals and opens cursors with one key.
type cursorCodec struct{ key []byte }

func newCursorCodec(key []byte) (*cursorCodec, error) {
	if len(key) < 32 {
		return nil, errors.New("admin: the cursor key must be at least 32 bytes")
	}
	return &cursorCodec{key: append([]byte(nil), key...)}, nil
}

type cursor struct {
	list, sort string
	desc       bool
	filter     [8]byte
	pos        position
}

func (c *cursorCodec) mac(b []byte) []byte {
	m := hmac.New(sha256.New, c.key)
	m.Write(b)
	return m.Sum(nil)
}

// seal encodes cur. Strings longer than maxCursorStr cannot be encoded;
// the caller's positions never are (ids and names are bounded far below).
func (c *cursorCodec) seal(cur cursor) (string, error) {
	if len(cur.list) > 255 || len(cur.sort) > 255 || len(cur.pos.Text) > maxCursorStr || len(cur.pos.ID) > maxCursorStr {
		return "", errors.New("admin: cursor field too long")
	}
	b := make([]byte, 0, 64+len(cur.pos.Text)+len(cur.pos.ID))
	b = append(b, cursorVersion, byte(len(cur.list)))
	b = append(b, cur.list...)
	b = append(b, byte(len(cur.sort)))
	b = append(b, cur.sort...)
	var flags byte
	if cur.desc {
		flags |= 1
	}
	var ms int64
	if !cur.pos.Time.IsZero() {
		flags |= 2
		ms = cur.pos.Time.UnixMilli()
	}
	b = append(b, flags)
	b = append(b, cur.filter[:]...)
	b = binary.BigEndian.AppendUint64(b, uint64(ms))
	b = binary.BigEndian.AppendUint64(b, uint64(cur.pos.Num))
	b = binary.AppendUvarint(b, uint64(len(cur.pos.Text)))
	b = append(b, cur.pos.Text...)
	b = binary.AppendUvarint(b, uint64(len(cur.pos.ID)))
	b = append(b, cur.pos.ID...)
	b = append(b, c.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// decode verifies and decodes s. It accepts only the exact encoding seal
// produces: canonical base64url, every length consistent, no trailing
// bytes, flags and strings valid.
func (c *cursorCodec) decode(s string) (cursor, error) {
	if len(s) == 0 || len(s) > maxCursorLen {
		return cursor{}, errCursor
	}
	b, err := base64.RawURLEncoding.Strict().DecodeString(s)
	if err != nil || len(b) < 1+1+1+1+8+8+8+1+1+macSize {
		return cursor{}, errCursor
	}
	body, tag := b[:len(b)-macSize], b[len(b)-macSize:]
	if !hmac.Equal(tag, c.mac(body)) {
		return cursor{}, errCursor
	}
	r := reader{b: body}
	var cur cursor
	if r.byte() != cursorVersion {
		return cursor{}, errCursor
	}
	cur.list = r.str(int(r.byte()))
	cur.sort = r.str(int(r.byte()))
	flags := r.byte()
	copy(cur.filter[:], r.take(8))
	ms := int64(r.u64())
	cur.pos.Num = int64(r.u64())
	cur.pos.Text = r.str(r.uvarint())
	cur.pos.ID = r.str(r.uvarint())
	switch {
	case r.bad || len(r.b) != 0 || flags&^3 != 0:
		return cursor{}, errCursor
	case flags&2 == 0 && ms != 0:
		return cursor{}, errCursor
	case !utf8.ValidString(cur.list) || !utf8.ValidString(cur.sort) || !utf8.ValidString(cur.pos.Text) || !utf8.ValidString(cur.pos.ID):
		return cursor{}, errCursor
	}
	cur.desc = flags&1 != 0
	if flags&2 != 0 {
		cur.pos.Time = time.UnixMilli(ms).UTC()
	}
	return cur, nil
}

// open decodes s and checks that it belongs to this listing, order and
// filter set.
func (c *cursorCodec) open(s, list, sort string, desc bool, filter [8]byte) (*position, error) {
	cur, err := c.decode(s)
	if err != nil || cur.list != list || cur.sort != sort || cur.desc != desc || cur.filter != filter {
		return nil, cursorRefused()
	}
	return &cur.pos, nil
}

// reader consumes a byte slice, noting any overrun instead of panicking.
type reader struct {
	b   []byte
	bad bool
}

func (r *reader) take(n int) []byte {
	if n < 0 || n > len(r.b) {
		r.bad = true
		r.b = nil
		return make([]byte, max(n, 0))
	}
	out := r.b[:n]
	r.b = r.b[n:]
	return out
}

func (r *reader) byte() byte { return r.take(1)[0] }

func (r *reader) u64() uint64 { return binary.BigEndian.Uint64(r.take(8)) }

func (r *reader) uvarint() int {
	v, n := binary.Uvarint(r.b)
	if n <= 0 || v > maxCursorStr || n != len(binary.AppendUvarint(nil, v)) { // minimal encodings only
		r.bad = true
		r.b = nil
		return 0
	}
	r.b = r.b[n:]
	return int(v)
}

func (r *reader) str(n int) string { return string(r.take(n)) }
