package admin

import (
	"bytes"
	"encoding/base64"
	"errors"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"
	"unicode/utf8"
)

var fuzzKey = bytes.Repeat([]byte{7}, 32)

// FuzzCursorDecode: a string opens as a cursor only if this server sealed
// exactly it. Anything decode accepts re-seals to the same string (one
// encoding per cursor, MAC-verified), and the typed values it yields are
// the only thing a caller's cursor can become.
func FuzzCursorDecode(f *testing.F) {
	c, _ := newCursorCodec(fuzzKey)
	for _, cur := range []cursor{
		{list: "users", sort: "username", pos: position{Text: "alice", ID: "u_1"}},
		{list: "audit", sort: "id", pos: position{Num: 42}},
		{list: "apps", sort: "created", desc: true, filter: [8]byte{1, 2, 3}, pos: position{Time: time.UnixMilli(1700000000123).UTC(), ID: "app"}},
	} {
		s, err := c.seal(cur)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(s)
		f.Add(s[:len(s)-1])
		f.Add(s + "A")
	}
	f.Add("")
	f.Add("garbage")
	f.Add(base64.RawURLEncoding.EncodeToString(make([]byte, 200)))
	f.Fuzz(func(t *testing.T, s string) {
		cur, err := c.decode(s)
		if err != nil {
			if !errors.Is(err, errCursor) {
				t.Fatalf("decode error %v is not errCursor", err)
			}
			return
		}
		again, err := c.seal(cur)
		if err != nil || again != s {
			t.Fatalf("decode accepted %q, which re-seals to %q (%v)", s, again, err)
		}
		if !utf8.ValidString(cur.pos.Text) || !utf8.ValidString(cur.pos.ID) {
			t.Fatalf("decode yielded invalid UTF-8: %+v", cur)
		}
		if _, err := c.open(s, cur.list+"x", cur.sort, cur.desc, cur.filter); err == nil {
			t.Fatal("a cursor opened for another listing")
		}
	})
}

// FuzzCursorRoundTrip: every cursor survives seal and decode unchanged,
// and changing any one byte of a sealed cursor makes it fail.
func FuzzCursorRoundTrip(f *testing.F) {
	c, _ := newCursorCodec(fuzzKey)
	f.Add("users", "username", false, int64(0), int64(0), "alice", "u_1", 3, byte(1))
	f.Add("audit", "id", false, int64(0), int64(99), "", "", 0, byte(0x80))
	f.Add("connections", "expires", true, int64(1700000000000), int64(-5), "c1|x", "c_abc", 40, byte(2))
	f.Fuzz(func(t *testing.T, list, sort string, desc bool, ms, num int64, text, id string, at int, xor byte) {
		if !utf8.ValidString(list) || !utf8.ValidString(sort) || !utf8.ValidString(text) || !utf8.ValidString(id) {
			return
		}
		cur := cursor{list: list, sort: sort, desc: desc, pos: position{Num: num, Text: text, ID: id}}
		if ms != 0 {
			cur.pos.Time = time.UnixMilli(ms).UTC()
		}
		s, err := c.seal(cur)
		if err != nil {
			return // a field too long to encode
		}
		got, err := c.decode(s)
		if err != nil {
			t.Fatalf("decode(seal(%+v)) = %v", cur, err)
		}
		if got != cur {
			t.Fatalf("round trip: %+v became %+v", cur, got)
		}
		raw, _ := base64.RawURLEncoding.DecodeString(s)
		if xor == 0 {
			xor = 1
		}
		i := ((at % len(raw)) + len(raw)) % len(raw)
		raw[i] ^= xor
		if _, err := c.decode(base64.RawURLEncoding.EncodeToString(raw)); err == nil {
			t.Fatalf("a cursor with byte %d changed still decodes", i)
		}
		other, _ := newCursorCodec(bytes.Repeat([]byte{8}, 32))
		if _, err := other.decode(s); err == nil {
			t.Fatal("a cursor decodes under another key")
		}
	})
}

// FuzzQueryParse: whatever the query string, the parser either refuses it
// with a 400 or yields only known parameters, each valid for its kind and
// in canonical form, an allowlisted sort key and a bounded limit; and the
// canonical form parses back to the same result.
func FuzzQueryParse(f *testing.F) {
	c, _ := newCursorCodec(fuzzKey)
	for _, s := range []string{
		"", "group=staff", "disabled=true&sort=-created&limit=10", "sort=name;%20DROP%20TABLE%20users",
		"group=staff'%20OR%20'1'='1", "status=approved&app=assistant&resource=https://MCP.example.com:443/files",
		"since=2026-01-02T15:04:05%2B02:00&type=idjag.issued", "limit=0", "x=1", "group=a&group=b", "%zz",
		"cursor=AAAA", "sort=-id", "outcome=allow&jti=abc",
	} {
		f.Add(s)
	}
	specs := []*querySpec{usersQuery, appsQuery, resourcesQuery, connectionsQuery, auditQuery, exportQuery, loginQuery, callbackQuery}
	f.Fuzz(func(t *testing.T, raw string) {
		for _, spec := range specs {
			q, err := spec.parse(raw, c)
			if err != nil {
				var ae *apiError
				if !errors.As(err, &ae) || ae.status != 400 {
					t.Fatalf("%s: parse error %v is not a 400", spec.list, err)
				}
				continue
			}
			canon := url.Values{}
			for k, v := range q.values {
				p := spec.filter(k)
				if p.name == "" {
					t.Fatalf("%s: unknown parameter %q accepted", spec.list, k)
				}
				again, err := p.check(v)
				if err != nil || again != v {
					t.Fatalf("%s: value %q of %s is not canonical (%q, %v)", spec.list, v, k, again, err)
				}
				canon.Set(k, v)
			}
			if len(spec.sorts) > 0 && !slices.Contains(spec.sorts, q.sort) {
				t.Fatalf("%s: sort %q not in the allowlist", spec.list, q.sort)
			}
			if q.desc && spec.noSortDesc {
				t.Fatalf("%s: descending order accepted", spec.list)
			}
			if q.limit < 1 || q.limit > maxLimit {
				t.Fatalf("%s: limit %d out of range", spec.list, q.limit)
			}
			if q.after != nil {
				t.Fatalf("%s: a fuzzed cursor opened", spec.list)
			}
			if spec.list != "" {
				sort := q.sort
				if q.desc {
					sort = "-" + sort
				}
				if len(spec.sorts) > 0 {
					canon.Set(paramSort, sort)
				}
				canon.Set(paramLimit, strconv.Itoa(q.limit))
			}
			q2, err := spec.parse(canon.Encode(), c)
			if err != nil {
				t.Fatalf("%s: canonical form %q of %q does not parse: %v", spec.list, canon.Encode(), raw, err)
			}
			if q2.sort != q.sort || q2.desc != q.desc || q2.limit != q.limit || q2.filterHash() != q.filterHash() {
				t.Fatalf("%s: %q and its canonical form %q parse differently", spec.list, raw, canon.Encode())
			}
		}
	})
}
