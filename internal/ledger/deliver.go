package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/openxaa/xaa/internal/jose"
	"github.com/openxaa/xaa/internal/secevent"
	"github.com/openxaa/xaa/internal/store"
)

// Audit event types of deliveries (stream "idp").
const (
	AuditSETDelivered = "set.delivered"
	AuditSETFailed    = "set.failed"
)

// DelivererStore is what the Deliverer reads and writes.
type DelivererStore interface {
	store.SETOutbox
	store.Audit
}

// Keys is the IdP's signing-key source; Signer is asked at every attempt,
// so a rotated key is used at once.
type Keys interface {
	Signer() jose.Signer
}

// DelivererOptions configures NewDeliverer. Zero durations take the
// defaults.
type DelivererOptions struct {
	Store DelivererStore
	// Issuer is the IdP's issuer: the SETs' iss and the subjects' iss.
	Issuer string
	Keys   Keys
	// HTTPClient sends the SETs and fetches metadata; nil means a client
	// without proxy or redirects and with a 10 s timeout.
	HTTPClient *http.Client
	// AllowLoopbackHTTP allows plain-http authorization servers on
	// loopback hosts (development).
	AllowLoopbackHTTP bool
	// PollInterval is how often the outbox is read when nothing wakes the
	// deliverer; default 100 ms, so a change made by another process
	// (the CLI) goes out well within a second. An idle poll is one
	// indexed read.
	PollInterval time.Duration
	// MinBackoff and MaxBackoff bound the exponential backoff between
	// attempts (with jitter); defaults 1 s and 5 min.
	MinBackoff, MaxBackoff time.Duration
	// GiveUpAfter is how long after a SET's not-before time delivery is
	// still attempted; default store.MaxAccessTokenLifetime plus 5
	// minutes, after which every token it could void has expired anyway.
	GiveUpAfter time.Duration
	// MetadataTTL is how long an authorization server's SET endpoint is
	// cached; default 5 min. A failed delivery forgets it.
	MetadataTTL time.Duration
	Now         func() time.Time
	Logger      *slog.Logger
}

// Deliverer pushes queued Security Event Tokens (RFC 8935) to the
// authorization servers they name, retrying with exponential backoff and
// jitter while a receiver is down or answers 5xx, and recording every
// outcome in the outbox (visible through Service.Get). Run it in the IdP
// process; several instances may run against one database, each claims
// its own tokens.
type Deliverer struct {
	o    DelivererOptions
	http *http.Client
	wake chan struct{}

	mu        sync.Mutex
	endpoints map[string]cachedEndpoint // issuer -> SET endpoint
}

type cachedEndpoint struct {
	url     string
	fetched time.Time
}

// Deliverer limits.
const (
	deliveryLease    = 30 * time.Second // longer than one attempt can take
	deliveryParallel = 8
	maxAnswer        = 64 << 10
)

// NewDeliverer validates opts and returns a Deliverer.
func NewDeliverer(opts *DelivererOptions) (*Deliverer, error) {
	if opts == nil || opts.Store == nil || opts.Keys == nil || opts.Issuer == "" {
		return nil, errors.New("ledger: the deliverer needs a Store, Keys and the IdP's Issuer")
	}
	o := *opts
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&o.PollInterval, 100*time.Millisecond)
	def(&o.MinBackoff, time.Second)
	def(&o.MaxBackoff, 5*time.Minute)
	def(&o.GiveUpAfter, store.MaxAccessTokenLifetime+5*time.Minute)
	def(&o.MetadataTTL, 5*time.Minute)
	switch {
	case o.PollInterval < 0 || o.MinBackoff < 0 || o.MaxBackoff < o.MinBackoff || o.GiveUpAfter < 0 || o.MetadataTTL < 0:
		return nil, errors.New("ledger: deliverer durations must be positive, with MaxBackoff at least MinBackoff")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	hc := o.HTTPClient
	if hc == nil {
		hc = &http.Client{
			Timeout:       10 * time.Second,
			Transport:     &http.Transport{Proxy: nil, TLSHandshakeTimeout: 5 * time.Second, ResponseHeaderTimeout: 10 * time.Second, MaxIdleConnsPerHost: 4},
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	return &Deliverer{o: o, http: hc, wake: make(chan struct{}, 1), endpoints: map[string]cachedEndpoint{}}, nil
}

// Wake makes Run deliver at once (Options.Notify of the Service).
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends.
func (d *Deliverer) Run(ctx context.Context) {
	t := time.NewTicker(d.o.PollInterval)
	defer t.Stop()
	for {
		if _, err := d.DeliverDue(ctx); err != nil && ctx.Err() == nil {
			d.o.Logger.ErrorContext(ctx, "deliver security event tokens", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
	}
}

// DeliverDue claims the tokens due now, attempts each once (in parallel),
// records the outcomes, and returns how many it attempted.
func (d *Deliverer) DeliverDue(ctx context.Context) (int, error) {
	now := d.o.Now().UTC()
	due, err := d.o.Store.ClaimSETs(ctx, now, deliveryLease, claimableSets)
	if err != nil || len(due) == 0 {
		return 0, err
	}
	sem := make(chan struct{}, deliveryParallel)
	var wg sync.WaitGroup
	for _, set := range due {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			d.attempt(ctx, set)
		}()
	}
	wg.Wait()
	return len(due), nil
}

// errPermanent marks a refusal that retrying cannot change.
var errPermanent = errors.New("refused")

// attempt sends one token once and records the outcome.
func (d *Deliverer) attempt(ctx context.Context, set store.SETDelivery) {
	log := d.o.Logger.With("jti", set.JTI, "audience", set.Audience, "connection", set.ConnectionID)
	err := d.send(ctx, set)
	now := d.o.Now().UTC().Truncate(time.Millisecond)
	set.Attempts++
	var ev *store.AuditEvent
	switch {
	case err == nil:
		set.Status, set.DeliveredAt, set.LastError = store.SETDelivered, now, ""
		ev = d.auditEvent(now, AuditSETDelivered, "allow", "set.delivered", "delivered to "+set.Audience, set)
		log.InfoContext(ctx, "security event token delivered", "attempts", set.Attempts)
	case ctx.Err() != nil:
		return // shutting down: the claim lapses and another pass retries
	case errors.Is(err, errPermanent):
		set.Status, set.LastError = store.SETFailed, clipError(err)
		ev = d.auditEvent(now, AuditSETFailed, "error", "set.refused", set.LastError, set)
		log.ErrorContext(ctx, "security event token refused", "err", err)
	case now.After(set.NotBefore.Add(d.o.GiveUpAfter)):
		set.Status = store.SETFailed
		set.LastError = clipError(fmt.Errorf("gave up: every token it could void has expired; last error: %w", err))
		ev = d.auditEvent(now, AuditSETFailed, "error", "set.gave_up", set.LastError, set)
		log.ErrorContext(ctx, "security event token given up", "err", err, "attempts", set.Attempts)
	default:
		set.LastError = clipError(err)
		set.NextAttemptAt = now.Add(d.backoff(set.Attempts))
		log.WarnContext(ctx, "security event token not delivered; retrying", "err", err, "attempts", set.Attempts, "next", set.NextAttemptAt)
	}
	if err != nil {
		d.forget(set.Audience) // the endpoint may have moved
	}
	ctx = context.WithoutCancel(ctx)
	if uerr := d.o.Store.UpdateSET(ctx, set); uerr != nil {
		log.ErrorContext(ctx, "record security event token delivery", "err", uerr)
		return
	}
	if ev != nil {
		if aerr := d.o.Store.AppendAudit(ctx, ev); aerr != nil {
			log.ErrorContext(ctx, "audit security event token delivery", "err", aerr)
		}
	}
}

func (d *Deliverer) auditEvent(now time.Time, typ, outcome, rule, reason string, set store.SETDelivery) *store.AuditEvent {
	data := map[string]string{
		"set_jti": set.JTI, "audience": set.Audience, "attempts": strconv.Itoa(set.Attempts),
		"not_before": strconv.FormatInt(set.NotBefore.Unix(), 10), "ledger_seq": strconv.FormatInt(set.LedgerSeq, 10),
	}
	if set.ConnectionID != "" {
		data["connection_id"] = set.ConnectionID
	}
	if set.ClientID != "" {
		data["client_id_at_as"] = set.ClientID
	}
	return &store.AuditEvent{Time: now, Type: typ, Actor: "system:ledger", Subject: set.Subject, Outcome: outcome,
		Rule: rule, Reason: reason, Data: data}
}

// backoff is the wait before attempt n+1: MinBackoff doubled per attempt
// up to MaxBackoff, then jittered into [half, full] so that retries from
// many tokens spread out.
func (d *Deliverer) backoff(attempts int) time.Duration {
	b := d.o.MaxBackoff
	if attempts < 40 {
		if x := d.o.MinBackoff << (attempts - 1); x > 0 && x < b {
			b = x
		}
	}
	half := b / 2
	return half + time.Duration(rand.Int64N(int64(half)+1))
}

// send signs set and POSTs it to its audience's SET endpoint.
func (d *Deliverer) send(ctx context.Context, set store.SETDelivery) error {
	endpoint, err := d.endpoint(ctx, set.Audience)
	if err != nil {
		return err
	}
	ev := secevent.AccessRevoked{
		ClientID:         set.ClientID,
		ConnectionID:     set.ConnectionID,
		NotBefore:        set.NotBefore.Unix(),
		EventTimestamp:   set.CreatedAt.Unix(),
		InitiatingEntity: secevent.InitiatingAdmin,
	}
	if set.Subject != "" {
		ev.Subject = &secevent.Subject{Format: secevent.SubjectFormatIssSub, Iss: d.o.Issuer, Sub: set.Subject}
	}
	if r := strings.Join(strings.Fields(set.Reason), " "); r != "" {
		ev.ReasonAdmin = map[string]string{"en": r}
	}
	token, err := d.o.Keys.Signer().Sign(ctx, jose.TypeSET, secevent.New(d.o.Issuer, set.Audience, set.JTI, d.o.Now(), ev))
	if err != nil {
		return fmt.Errorf("sign: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, strings.NewReader(token))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", secevent.ContentType)
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	switch {
	case resp.StatusCode == http.StatusAccepted || resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusNoContent:
		return nil
	case resp.StatusCode == http.StatusBadRequest:
		// RFC 8935 §2.3: the receiver refuses this SET; sending it again
		// changes nothing.
		var de secevent.DeliveryError
		if json.Unmarshal(body, &de) == nil && de.Err != "" {
			return fmt.Errorf("%w by %s: %s: %s", errPermanent, set.Audience, clipText(de.Err, 64), clipText(de.Description, 256))
		}
		return fmt.Errorf("%w by %s: HTTP 400", errPermanent, set.Audience)
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests, resp.StatusCode == http.StatusRequestTimeout:
		return fmt.Errorf("%s answered HTTP %d", set.Audience, resp.StatusCode)
	case resp.StatusCode >= 400:
		return fmt.Errorf("%w by %s: HTTP %d", errPermanent, set.Audience, resp.StatusCode)
	default:
		return fmt.Errorf("%s answered HTTP %d", set.Audience, resp.StatusCode)
	}
}

// endpoint returns the SET endpoint of the authorization server issuer,
// from its RFC 8414 metadata (path-inserted), cached.
func (d *Deliverer) endpoint(ctx context.Context, issuer string) (string, error) {
	d.mu.Lock()
	c, ok := d.endpoints[issuer]
	d.mu.Unlock()
	if ok && d.o.Now().Sub(c.fetched) < d.o.MetadataTTL {
		return c.url, nil
	}
	iss, err := url.Parse(issuer)
	if err != nil || iss.Host == "" || iss.RawQuery != "" || iss.Fragment != "" {
		return "", fmt.Errorf("%w: authorization server issuer %q is not an absolute URL", errPermanent, clipText(issuer, 128))
	}
	if err := d.checkURL(iss); err != nil {
		return "", err
	}
	mu := *iss
	mu.Path = "/.well-known/oauth-authorization-server" + strings.TrimSuffix(iss.Path, "/")
	mu.RawPath = ""
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, mu.String(), nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := d.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("metadata of %s: %w", issuer, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer+1))
	if err != nil || len(body) > maxAnswer {
		return "", fmt.Errorf("metadata of %s: unreadable or larger than %d bytes", issuer, maxAnswer)
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("metadata of %s: HTTP %d", issuer, resp.StatusCode)
	}
	var m struct {
		Issuer      string `json:"issuer"`
		SETEndpoint string `json:"openxaa_set_endpoint"`
	}
	if err := json.Unmarshal(body, &m); err != nil {
		return "", fmt.Errorf("metadata of %s: %w", issuer, err)
	}
	switch {
	case m.Issuer != issuer:
		return "", fmt.Errorf("metadata of %s names issuer %q", issuer, clipText(m.Issuer, 128))
	case m.SETEndpoint == "":
		return "", fmt.Errorf("%s publishes no openxaa_set_endpoint: it does not receive security events", issuer)
	}
	ep, err := url.Parse(m.SETEndpoint)
	if err != nil || ep.Scheme != iss.Scheme || ep.Host != iss.Host || ep.User != nil || ep.Fragment != "" {
		// The SET goes only to the issuer's own origin: metadata cannot
		// send it elsewhere.
		return "", fmt.Errorf("the SET endpoint %q of %s is not on the issuer's origin", clipText(m.SETEndpoint, 128), issuer)
	}
	d.mu.Lock()
	d.endpoints[issuer] = cachedEndpoint{url: ep.String(), fetched: d.o.Now()}
	d.mu.Unlock()
	return ep.String(), nil
}

func (d *Deliverer) forget(issuer string) {
	d.mu.Lock()
	delete(d.endpoints, issuer)
	d.mu.Unlock()
}

// checkURL allows https, and http only to loopback hosts when
// AllowLoopbackHTTP is set.
func (d *Deliverer) checkURL(u *url.URL) error {
	switch {
	case u.Scheme == "https":
		return nil
	case u.Scheme == "http" && d.o.AllowLoopbackHTTP && isLoopback(u.Hostname()):
		return nil
	}
	return fmt.Errorf("%w: %s is not https (plain http only to loopback hosts in development)", errPermanent, u.Redacted())
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

func clipError(err error) string { return clipText(err.Error(), 1024) }

// clipText bounds a string and drops control characters.
func clipText(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "..."
	}
	return s
}
