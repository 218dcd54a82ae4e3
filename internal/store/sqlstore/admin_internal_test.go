package sqlstore

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// FuzzListQuery is the threat model's FuzzAdminFilter invariant: whatever
// page a caller asks for, the SQL text of a listing is one of the fixed
// templates built at package load (or the page is refused as
// store.ErrInvalid), and nothing the caller gave appears in it: sort keys
// select a template, positions and limits are bound parameters.
func FuzzListQuery(f *testing.F) {
	f.Add(0, "name", false, true, "alice", int64(0), "u_1", 10)
	f.Add(1, "created", true, true, "", int64(1700000000000), "app", 1000)
	f.Add(2, "name; DROP TABLE users", false, false, "", int64(0), "", 0)
	f.Add(3, "uri", true, true, "' OR 1=1 --", int64(-1), "x'); DELETE FROM resources; --", -5)
	templates := map[string]bool{}
	for _, q := range listQueries {
		templates[q] = true
	}
	listings := []listing{usersListing, appsListing, groupsListing, resourcesListing}
	f.Fuzz(func(t *testing.T, which int, sort string, desc, after bool, text string, ms int64, id string, limit int) {
		l := listings[((which%len(listings))+len(listings))%len(listings)]
		p := store.Page{Sort: sort, Desc: desc, Limit: limit}
		if after {
			p.After = &store.Position{Text: text, Time: time.UnixMilli(ms), ID: id}
		}
		q, args, err := pageQuery(l, p)
		if err != nil {
			if !errors.Is(err, store.ErrInvalid) {
				t.Fatalf("pageQuery error %v is not ErrInvalid", err)
			}
			return
		}
		if !templates[q] {
			t.Fatalf("query text is not a template:\n%s", q)
		}
		if len(args) != 4 {
			t.Fatalf("%d page arguments, want 4", len(args))
		}
		if n := args[3].(int); n < 1 || n > 1000 {
			t.Fatalf("limit %d out of range", n)
		}
	})
}

// TestListQueriesAreFinite: one template per listing, sort key and
// direction, and nothing else.
func TestListQueriesAreFinite(t *testing.T) {
	t.Parallel()
	want := 0
	for _, l := range []listing{usersListing, appsListing, groupsListing, resourcesListing} {
		want += 2 * len(l.sorts)
	}
	if len(listQueries) != want {
		t.Errorf("%d list query texts, want %d", len(listQueries), want)
	}
	for k, q := range listQueries {
		if strings.Count(q, "ORDER BY") != 1 || !strings.Contains(q, "LIMIT $") {
			t.Errorf("%s: unexpected text %q", k, q)
		}
	}
}
