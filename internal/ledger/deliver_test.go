package ledger

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/authserver"
	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/secevent"
	"github.com/openxaa/xaa/internal/store"
)

// answer sets how the SET endpoint answers: fn returns true when it
// answered itself, false to let the real authorization server answer.
func (h *harness) answer(fn func(w http.ResponseWriter, r *http.Request) bool) {
	h.receiver.Store(&fn)
}

func (h *harness) deliver() int {
	h.t.Helper()
	n, err := h.del.DeliverDue(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return n
}

// TestDeliverRevocation: a revocation's security event reaches the
// authorization server, which raises the fence it names; the ledger shows
// the delivery, and a gateway's later read of the revocation list as the
// revocation having reached it.
func TestDeliverRevocation(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.approved(h.resource)
	var mu sync.Mutex
	var got []string
	h.answer(func(w http.ResponseWriter, r *http.Request) bool {
		b, _ := io.ReadAll(r.Body)
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		mu.Lock()
		got = append(got, r.Header.Get("Content-Type")+" "+string(b))
		mu.Unlock()
		return false
	})
	e, err := h.svc.Revoke(ctx, carol, e.ID, "vendor offboarded")
	if err != nil {
		t.Fatal(err)
	}
	if n := h.deliver(); n != 1 {
		t.Fatalf("delivered %d", n)
	}
	e, _ = h.svc.Get(ctx, e.ID)
	d := e.Deliveries[0]
	if d.Status != store.SETDelivered || d.Attempts != 1 || d.DeliveredAt.IsZero() || d.LastError != "" {
		t.Fatalf("delivery %+v", d)
	}
	// The fence stands at the authorization server: the app's tokens
	// issued before the revocation are void.
	if nb := h.fence(appAtAS, ""); !nb.Equal(d.NotBefore) {
		t.Errorf("fence %v, want %v", nb, d.NotBefore)
	}
	asAudit, err := h.db.ListAudit(ctx, store.AuditFilter{Type: authserver.AuditFenceRaised})
	if err != nil || len(asAudit) != 1 || asAudit[0].Data["set_jti"] != d.JTI || asAudit[0].Data["connection_id"] != e.ID {
		t.Errorf("authorization server audit %+v, %v", asAudit, err)
	}
	if evs := h.audit(AuditSETDelivered); len(evs) != 1 || evs[0].Data["set_jti"] != d.JTI {
		t.Errorf("delivery audit %+v", evs)
	}
	// The SET on the wire: typ, iss, aud, one event naming the client at
	// the authorization server, the connection and the not-before time.
	if len(got) != 1 || !strings.HasPrefix(got[0], secevent.ContentType+" ") {
		t.Fatalf("received %q", got)
	}
	raw := strings.TrimPrefix(got[0], secevent.ContentType+" ")
	keys, _ := jose.NewStaticKeySet(jose.PublicJWKS(h.signer.PublicKey()))
	tok, err := jose.Verify(ctx, raw, jose.SETProfile(), jose.SingleIssuer{Issuer: idpIssuer, Keys: keys},
		jose.Expectations{Audiences: []string{h.asIssuer}, Now: h.clock.Now()})
	if err != nil {
		t.Fatal(err)
	}
	ev, err := secevent.Parse(tok)
	if err != nil || tok.Header.Type != jose.TypeSET || tok.ID != d.JTI || ev.Subject != nil || ev.ClientID != appAtAS ||
		ev.ConnectionID != e.ID || ev.NotBefore != d.NotBefore.Unix() || ev.Reason() != "vendor offboarded" {
		t.Errorf("SET %+v event %+v (%v)", tok, ev, err)
	}
	// A gateway reading the revocation list afterwards has picked it up.
	req, _ := http.NewRequest(http.MethodGet, h.asIssuer+"/revocations", nil)
	req.SetBasicAuth(gwClient, "gw-secret")
	resp, err := h.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Fences []struct {
			ClientID  string `json:"client_id"`
			NotBefore int64  `json:"not_before"`
		} `json:"fences"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Fences) != 1 || list.Fences[0].ClientID != appAtAS {
		t.Errorf("revocation list fences %+v", list.Fences)
	}
	e, _ = h.svc.Get(ctx, e.ID)
	var states []string
	for _, p := range e.EnforcementPoints {
		states = append(states, p.Kind+"="+p.State)
	}
	if strings.Join(states, " ") != "idp=refusing authserver=delivered gateway=reached" {
		t.Errorf("enforcement points %v", states)
	}
}

// TestDeliverRetries: while the receiver is unreachable or answers 5xx
// the event stays pending, with its attempts, last error and a next
// attempt that backs off exponentially (with jitter); once the receiver
// answers, it is delivered.
func TestDeliverRetries(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.approved(h.resource)
	failures := []func(w http.ResponseWriter){
		func(w http.ResponseWriter) { // the connection drops
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		},
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusServiceUnavailable) },
		func(w http.ResponseWriter) { w.WriteHeader(http.StatusBadGateway) },
	}
	var mu sync.Mutex
	calls := 0
	h.answer(func(w http.ResponseWriter, _ *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		if calls < len(failures) {
			failures[calls](w)
			calls++
			return true
		}
		return false
	})
	if _, err := h.svc.Suspend(ctx, carol, e.ID, "incident"); err != nil {
		t.Fatal(err)
	}
	wantErr := []string{"EOF", "HTTP 503", "HTTP 502"}
	for i := range failures {
		before := h.clock.Now()
		if n := h.deliver(); n != 1 {
			t.Fatalf("attempt %d: claimed %d", i+1, n)
		}
		d := h.sets(store.SETFilter{ConnectionID: e.ID})[0]
		wait := d.NextAttemptAt.Sub(before)
		full := time.Second << i
		if d.Status != store.SETPending || d.Attempts != i+1 || !strings.Contains(d.LastError, wantErr[i]) || wait < full/2 || wait > full {
			t.Fatalf("after failure %d: %+v (next in %s, want %s-%s)", i+1, d, wait, full/2, full)
		}
		if n := h.deliver(); n != 0 {
			t.Fatalf("claimed %d before the backoff elapsed", n)
		}
		h.clock.Add(full)
	}
	if n := h.deliver(); n != 1 {
		t.Fatalf("final attempt claimed %d", n)
	}
	d := h.sets(store.SETFilter{ConnectionID: e.ID})[0]
	if d.Status != store.SETDelivered || d.Attempts != 4 {
		t.Errorf("after recovery %+v", d)
	}
	if h.fence(appAtAS, "").IsZero() {
		t.Error("no fence after delivery")
	}
}

// TestDeliverRefused: an RFC 8935 400 is final: the event fails with the
// receiver's error and is not sent again.
func TestDeliverRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.approved(h.resource)
	h.answer(func(w http.ResponseWriter, _ *http.Request) bool {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		_, _ = w.Write([]byte(`{"err":"invalid_audience","description":"not for us"}`))
		return true
	})
	if _, err := h.svc.Revoke(ctx, carol, e.ID, "x"); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	h.clock.Add(time.Hour)
	if n := h.deliver(); n != 0 {
		t.Errorf("a refused event was claimed again")
	}
	got, _ := h.svc.Get(ctx, e.ID)
	d := got.Deliveries[0]
	if d.Status != store.SETFailed || d.Attempts != 1 || !strings.Contains(d.LastError, "invalid_audience: not for us") {
		t.Errorf("delivery %+v", d)
	}
	if p := got.EnforcementPoints[1]; p.State != StateFailed || !strings.Contains(p.Detail, "invalid_audience") {
		t.Errorf("point %+v", p)
	}
	if evs := h.audit(AuditSETFailed); len(evs) != 1 || evs[0].Rule != "set.refused" {
		t.Errorf("audit %+v", evs)
	}
}

// TestDeliverGivesUp: once every token an event could void has expired,
// retrying is pointless: the event fails.
func TestDeliverGivesUp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	e := h.approved(h.resource)
	h.answer(func(w http.ResponseWriter, _ *http.Request) bool {
		w.WriteHeader(http.StatusServiceUnavailable)
		return true
	})
	if _, err := h.svc.Revoke(ctx, carol, e.ID, "x"); err != nil {
		t.Fatal(err)
	}
	h.deliver()
	h.clock.Add(store.MaxAccessTokenLifetime + 6*time.Minute)
	h.deliver()
	d := h.sets(store.SETFilter{ConnectionID: e.ID})[0]
	if d.Status != store.SETFailed || d.Attempts != 2 || !strings.Contains(d.LastError, "gave up") {
		t.Errorf("delivery %+v", d)
	}
}

// TestDeliverersShareTheOutbox: deliverers running at once (instances on
// one database) send each event exactly once.
func TestDeliverersShareTheOutbox(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	ctx := context.Background()
	var conns []string
	for i := range 6 {
		res := h.resource + "/" + string(rune('a'+i))
		now := time.Now().UTC()
		if err := h.db.CreateResource(ctx, store.Resource{URI: res, Name: "R", AuthServerIssuer: h.asIssuer,
			Scopes: []store.ResourceScope{{Name: "files:read"}}, CreatedAt: now, UpdatedAt: now}); err != nil {
			t.Fatal(err)
		}
		e := h.approved(res)
		if _, err := h.svc.Revoke(ctx, carol, e.ID, "x"); err != nil {
			t.Fatal(err)
		}
		conns = append(conns, e.ID)
	}
	others := make([]*Deliverer, 3)
	for i := range others {
		d, err := NewDeliverer(&DelivererOptions{Store: h.db, Issuer: idpIssuer, Keys: keys{h.signer}, HTTPClient: h.srv.Client(),
			AllowLoopbackHTTP: true, Now: h.clock.Now})
		if err != nil {
			t.Fatal(err)
		}
		others[i] = d
	}
	var wg sync.WaitGroup
	for _, d := range others {
		wg.Go(func() {
			if _, err := d.DeliverDue(ctx); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, id := range conns {
		ds := h.sets(store.SETFilter{ConnectionID: id})
		if len(ds) != 1 || ds[0].Status != store.SETDelivered || ds[0].Attempts != 1 {
			t.Errorf("%s: %+v", id, ds)
		}
	}
	if evs := h.audit(AuditSETDelivered); len(evs) != len(conns) {
		t.Errorf("%d deliveries audited, want %d", len(evs), len(conns))
	}
}

// TestDelivererMetadata: the SET endpoint comes from the authorization
// server's metadata, and only from its own origin.
func TestDelivererMetadata(t *testing.T) {
	t.Parallel()
	h := newHarness(t, nil)
	for name, tc := range map[string]struct {
		body string
		want string
	}{
		"no endpoint":      {`{"issuer":"%s"}`, "publishes no openxaa_set_endpoint"},
		"foreign endpoint": {`{"issuer":"%s","openxaa_set_endpoint":"https://evil.example.com/set"}`, "not on the issuer's origin"},
		"another issuer":   {`{"issuer":"https://other.example.com","openxaa_set_endpoint":"%s/set"}`, "names issuer"},
	} {
		body := strings.Replace(tc.body, "%s", h.asIssuer, 1)
		d, err := NewDeliverer(&DelivererOptions{Store: h.db, Issuer: idpIssuer, Keys: keys{h.signer}, AllowLoopbackHTTP: true,
			HTTPClient: &http.Client{Transport: roundTrip(func(*http.Request) (*http.Response, error) {
				return &http.Response{StatusCode: 200, Header: http.Header{"Content-Type": {"application/json"}},
					Body: io.NopCloser(strings.NewReader(body))}, nil
			})}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := d.endpoint(context.Background(), h.asIssuer); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	d, _ := NewDeliverer(&DelivererOptions{Store: h.db, Issuer: idpIssuer, Keys: keys{h.signer}})
	if _, err := d.endpoint(context.Background(), h.asIssuer); err == nil || !strings.Contains(err.Error(), "not https") {
		t.Errorf("plain http without AllowLoopbackHTTP: %v", err)
	}
}

type roundTrip func(*http.Request) (*http.Response, error)

func (f roundTrip) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
