package gateway

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/openxaa/xaa/mcpauth"
)

// listAS speaks the contract's revocation-list wire format from an
// in-memory list, for tests where time must be simulated (testing/synctest
// cannot run real sockets) and failures injected. Entries are appended
// with increasing cursors, as the real server does.
type listAS struct {
	mu      sync.Mutex
	entries []listEntry
	down    atomic.Bool
	calls   atomic.Int64
	// reply, when set, replaces the answer (hostile-server cases).
	reply func(cursor int64) (int, string)
}

type listEntry struct {
	cursor               int64
	jti, clientID, sub   string
	revokedAt, notBefore int64
	fence                bool
}

func (a *listAS) revoke(jti string, at time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, listEntry{cursor: int64(len(a.entries) + 1), jti: jti, revokedAt: at.Unix()})
}

func (a *listAS) fence(clientID, sub string, nb time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.entries = append(a.entries, listEntry{cursor: int64(len(a.entries) + 1), clientID: clientID, sub: sub, notBefore: nb.Unix(), fence: true})
}

func (a *listAS) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.calls.Add(1)
	if id, secret, ok := r.BasicAuth(); !ok || id != gwClient || secret != gwSecret {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":"invalid_client"}`))
		return
	}
	if a.down.Load() {
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	cursor, _ := strconv.ParseInt(r.URL.Query().Get("cursor"), 10, 64)
	limit, _ := strconv.Atoi(r.URL.Query().Get("limit"))
	w.Header().Set("Content-Type", "application/json")
	if a.reply != nil {
		status, body := a.reply(cursor)
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
		return
	}
	type rev struct {
		JTI       string `json:"jti"`
		Resource  string `json:"resource"`
		RevokedAt int64  `json:"revoked_at"`
	}
	type fence struct {
		ClientID  string `json:"client_id"`
		Sub       string `json:"sub"`
		NotBefore int64  `json:"not_before"`
	}
	out := struct {
		Revoked []rev   `json:"revoked"`
		Fences  []fence `json:"fences"`
		Cursor  int64   `json:"cursor"`
		HasMore bool    `json:"has_more"`
	}{Revoked: []rev{}, Fences: []fence{}, Cursor: cursor}
	a.mu.Lock()
	n := 0
	for _, e := range a.entries {
		if e.cursor <= cursor {
			continue
		}
		if n == limit {
			out.HasMore = true
			break
		}
		if e.fence {
			out.Fences = append(out.Fences, fence{e.clientID, e.sub, e.notBefore})
		} else {
			out.Revoked = append(out.Revoked, rev{e.jti, "https://gw.example.com/mcp", e.revokedAt})
		}
		out.Cursor = e.cursor
		n++
	}
	a.mu.Unlock()
	_ = json.NewEncoder(w).Encode(out)
}

// handlerTransport serves requests in memory with h: the full HTTP
// handler, without a socket.
type handlerTransport struct{ h http.Handler }

func (t handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	rec := httptest.NewRecorder()
	t.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

func newTestRevocations(as *listAS, staleness time.Duration) *Revocations {
	c := &asClient{http: &http.Client{Transport: handlerTransport{as}}, clientID: gwClient, secret: gwSecret}
	return newRevocations(c, "https://as.example.com/revocations", staleness, time.Now)
}

func tokenInfo(jti, client, sub string, iat time.Time) *mcpauth.TokenInfo {
	return &mcpauth.TokenInfo{JTI: jti, ClientID: client, Subject: sub, IssuedAt: iat}
}

// TestPollerStalenessAndRecovery runs the real poll loop on a simulated
// clock: failed polls make the list stale exactly when the maximum
// staleness has passed since the last success, and the first successful
// poll afterwards makes it fresh again.
func TestPollerStalenessAndRecovery(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		as := &listAS{}
		rv := newTestRevocations(as, 30*time.Second)
		if !rv.Stale() {
			t.Fatal("a list never polled must be stale")
		}
		if err := rv.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		rt := &route{cfg: Route{Issuer: "https://as.example.com"}, revocations: rv, pollInterval: 10 * time.Second, log: slog.New(slog.DiscardHandler)}
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan struct{})
		go func() { rt.run(ctx); close(done) }()

		as.down.Store(true)
		time.Sleep(30 * time.Second) // polls at 10, 20, 30 s failed
		synctest.Wait()
		if rv.Stale() {
			t.Error("stale at exactly the maximum staleness")
		}
		time.Sleep(time.Second)
		if !rv.Stale() {
			t.Error("not stale 31 s after the last success")
		}
		as.revoke("j1", time.Now())
		as.down.Store(false)
		time.Sleep(9 * time.Second) // the poll at 40 s succeeds
		synctest.Wait()
		if rv.Stale() {
			t.Error("still stale after a successful poll")
		}
		if !rv.Revoked(tokenInfo("j1", "c", "s", time.Now())) {
			t.Error("the revocation learned by the recovering poll is not applied")
		}
		if got := as.calls.Load(); got != 5 {
			t.Errorf("%d polls, want 5 (one at start, one per tick)", got)
		}
		cancel()
		<-done
	})
}

// TestRevocationsForget: revocations and fences are dropped once no token
// they could match can still be live, and not before.
func TestRevocationsForget(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		as := &listAS{}
		rv := newTestRevocations(as, time.Minute)
		start := time.Now()
		as.revoke("old", start.Add(-2*time.Hour)) // its tokens are long dead
		as.revoke("new", start)
		as.fence("app", "alice", start)
		if err := rv.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if j, f := rv.Size(); j != 1 || f != 1 {
			t.Fatalf("held %d jtis, %d fences; want 1, 1 (the expired revocation is not kept)", j, f)
		}
		time.Sleep(forgetAfter - time.Second)
		if err := rv.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if j, f := rv.Size(); j != 1 || f != 1 {
			t.Errorf("just before forgetAfter: %d jtis, %d fences; want 1, 1", j, f)
		}
		time.Sleep(2 * time.Second)
		if err := rv.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if j, f := rv.Size(); j != 0 || f != 0 {
			t.Errorf("after forgetAfter: %d jtis, %d fences; want none", j, f)
		}
	})
}

// TestRevokedMatching covers how tokens match revocations and fences.
func TestRevokedMatching(t *testing.T) {
	t.Parallel()
	nb := time.Unix(1_800_000_000, 0)
	as := &listAS{}
	as.revoke("dead", nb)
	as.fence("app", "alice", nb)                 // one pair
	as.fence("", "bob", nb)                      // every client of bob
	as.fence("evil-app", "", nb)                 // every subject of evil-app
	as.fence("app", "carol", nb)                 // raised later ...
	as.fence("app", "carol", nb.Add(-time.Hour)) // ... a lower one never lowers it
	rv := newTestRevocations(as, time.Minute)
	rv.now = func() time.Time { return nb }
	if err := rv.Poll(context.Background()); err != nil {
		t.Fatal(err)
	}
	before, at := nb.Add(-time.Second), nb
	tests := []struct {
		name string
		ti   *mcpauth.TokenInfo
		want bool
	}{
		{"revoked jti", tokenInfo("dead", "app", "zed", at), true},
		{"other jti", tokenInfo("alive", "app", "zed", before), false},
		{"pair fence, issued before", tokenInfo("a", "app", "alice", before), true},
		{"pair fence, issued at not_before", tokenInfo("b", "app", "alice", at), false},
		{"pair fence, other client", tokenInfo("c", "other-app", "alice", before), false},
		{"subject fence, any client", tokenInfo("d", "other-app", "bob", before), true},
		{"client fence, any subject", tokenInfo("e", "evil-app", "anyone", before), true},
		{"client fence, issued after", tokenInfo("f", "evil-app", "anyone", at.Add(time.Second)), false},
		{"raised fence is not lowered", tokenInfo("g", "app", "carol", before), true},
		{"no iat counts as the epoch", tokenInfo("h", "app", "alice", time.Time{}), true},
		{"empty client and subject match no wildcard", tokenInfo("i", "", "", before), false},
	}
	for _, tt := range tests {
		if got := rv.Revoked(tt.ti); got != tt.want {
			t.Errorf("%s: Revoked = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestPollPagingAndHostileLists: the poller follows has_more across pages
// and resumes from its cursor, and refuses lists that would make it skip
// or loop; a failed poll is not a success.
func TestPollPagingAndHostileLists(t *testing.T) {
	t.Parallel()
	t.Run("paging", func(t *testing.T) {
		as := &listAS{}
		for i := range 2500 {
			as.revoke(fmt.Sprint("j", i), time.Now())
		}
		rv := newTestRevocations(as, time.Minute)
		if err := rv.Poll(t.Context()); err != nil {
			t.Fatal(err)
		}
		if j, _ := rv.Size(); j != 2500 || as.calls.Load() != 3 {
			t.Errorf("%d jtis in %d calls; want 2500 in 3 pages", j, as.calls.Load())
		}
		as.revoke("late", time.Now())
		if err := rv.Poll(t.Context()); err != nil || !rv.Revoked(tokenInfo("late", "", "", time.Now())) {
			t.Errorf("resume from the cursor: %v", err)
		}
		if rv.cursor != 2501 {
			t.Errorf("cursor = %d, want 2501", rv.cursor)
		}
	})
	for _, tt := range []struct {
		name   string
		status int
		body   string
		want   string
	}{
		{"cursor goes back", 200, `{"revoked":[],"fences":[],"cursor":-1,"has_more":false}`, "cursor went back"},
		{"has_more without progress", 200, `{"revoked":[],"fences":[],"cursor":0,"has_more":true}`, "did not move"},
		{"not JSON", 200, `<html>`, "not the expected JSON"},
		{"refused", 401, `{"error":"invalid_client","error_description":"nope"}`, "HTTP 401 invalid_client: nope"},
		{"server error", 503, `{"error":"temporarily_unavailable"}`, "HTTP 503 temporarily_unavailable"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			as := &listAS{reply: func(int64) (int, string) { return tt.status, tt.body }}
			rv := newTestRevocations(as, time.Minute)
			err := rv.Poll(t.Context())
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Poll = %v, want an error containing %q", err, tt.want)
			}
			if !rv.Stale() {
				t.Error("a failed poll counted as a success")
			}
		})
	}
}

// FuzzRevocationPage feeds arbitrary revocation-list answers to the
// poller. Invariants: it never panics; an answer it accepts leaves every
// listed jti revoked (unless its revocation is older than any live token)
// and every listed fence at least as high as listed; a refused answer
// changes nothing.
func FuzzRevocationPage(f *testing.F) {
	f.Add(`{"revoked":[{"jti":"a","resource":"r","revoked_at":1800000000}],"fences":[{"client_id":"c","sub":"s","not_before":1800000000}],"cursor":1,"has_more":false}`)
	f.Add(`{"revoked":[],"fences":[{"client_id":"","sub":"","not_before":5}],"cursor":0,"has_more":false}`)
	f.Add(`{"revoked":null,"cursor":9223372036854775807}`)
	f.Add(`{"cursor":-5,"has_more":true}`)
	f.Fuzz(func(t *testing.T, body string) {
		now := time.Unix(1_800_000_000, 0)
		as := &listAS{reply: func(cursor int64) (int, string) {
			if cursor != 0 { // the second page, if asked for, is the end
				return 200, fmt.Sprintf(`{"revoked":[],"fences":[],"cursor":%d,"has_more":false}`, cursor)
			}
			return 200, body
		}}
		rv := newTestRevocations(as, time.Minute)
		rv.now = func() time.Time { return now }
		err := rv.Poll(context.Background())
		var page revocationPage
		if json.Unmarshal([]byte(body), &page) != nil && err == nil {
			t.Fatalf("accepted %q", body)
		}
		if err != nil {
			if j, fc := rv.Size(); j != 0 || fc != 0 {
				t.Fatalf("a refused answer changed the list: %v", err)
			}
			return
		}
		for _, e := range page.Revoked {
			live := e.RevokedAt <= 0 || time.Unix(e.RevokedAt, 0).Add(forgetAfter).After(now)
			if e.JTI != "" && live && !rv.Revoked(tokenInfo(e.JTI, "x", "y", now)) {
				t.Fatalf("listed jti %q is not revoked", e.JTI)
			}
		}
		for _, fe := range page.Fences {
			if fe.ClientID == "" && fe.Sub == "" {
				continue
			}
			nb := time.Unix(fe.NotBefore, 0)
			if !nb.Add(forgetAfter).After(now) {
				continue // forgotten: no live token can match
			}
			if !rv.Revoked(tokenInfo("unlisted", fe.ClientID, fe.Sub, nb.Add(-time.Second))) {
				t.Fatalf("fence %+v does not cover a token issued before it", fe)
			}
		}
	})
}
