package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadOptions is one run: where, as whom, how hard and for how long.
type loadOptions struct {
	URL          string
	ClientID     string
	ClientSecret string
	AuthMethod   string // client_secret_basic or client_secret_post
	Workers      int
	Warmup       time.Duration
	Duration     time.Duration
	Timeout      time.Duration // per request
}

// loadResult is what a run measured. Only requests sent after the warm-up
// count; Elapsed runs from the end of the warm-up to the last of their
// answers.
type loadResult struct {
	Workers      int            `json:"workers"`
	Elapsed      time.Duration  `json:"elapsed_ns"`
	Requests     int            `json:"requests"`
	OK           int            `json:"ok"`
	Failures     map[string]int `json:"failures,omitempty"` // "<status> <error>" or "transport: ..."
	Dials        int64          `json:"dials"`              // TCP connections opened, warm-up included
	InlineMinted int64          `json:"inline_minted"`      // assertions signed during the load, pool exhausted
	latencies    []time.Duration
}

// rate is successful redemptions per second.
func (r *loadResult) rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.OK) / r.Elapsed.Seconds()
}

// percentile is the q-th quantile (0..1) of the latencies of every
// measured request, successful or not.
func (r *loadResult) percentile(q float64) time.Duration {
	if len(r.latencies) == 0 {
		return 0
	}
	i := int(q * float64(len(r.latencies)))
	return r.latencies[min(i, len(r.latencies)-1)]
}

// bodySource hands out request bodies: the pre-minted pool first, then
// freshly signed ones, each index exactly once.
type bodySource struct {
	m      *minter
	pool   []string
	next   atomic.Int64
	inline atomic.Int64
}

func (s *bodySource) take() (string, error) {
	i := int(s.next.Add(1) - 1)
	if i < len(s.pool) {
		b := s.pool[i]
		s.pool[i] = "" // sent once; let it go
		return b, nil
	}
	s.inline.Add(1)
	return s.m.body(i)
}

// drive sends token requests from o.Workers workers, each holding one
// keep-alive connection, until the warm-up and the duration are over.
func drive(ctx context.Context, o loadOptions, src *bodySource) (*loadResult, error) {
	if o.Workers < 1 {
		return nil, errors.New("workers must be at least 1")
	}
	if o.Duration <= 0 {
		return nil, errors.New("duration must be positive")
	}
	if o.AuthMethod != "client_secret_basic" && o.AuthMethod != "client_secret_post" {
		return nil, fmt.Errorf("auth method %q: want client_secret_basic or client_secret_post", o.AuthMethod)
	}
	var dials atomic.Int64
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	tr := &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			dials.Add(1)
			return dialer.DialContext(ctx, network, addr)
		},
		MaxIdleConns:        o.Workers,
		MaxIdleConnsPerHost: o.Workers,
		MaxConnsPerHost:     o.Workers,
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: o.Timeout}

	// client_secret_basic: RFC 6749 §2.3.1 form-encodes id and secret
	// before they go into the Basic header.
	basicID, basicSecret := url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret)
	postSuffix := "&" + url.Values{"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}}.Encode()

	start := time.Now()
	measureFrom := start.Add(o.Warmup)
	stop := measureFrom.Add(o.Duration)

	type workerResult struct {
		requests, ok int
		failures     map[string]int
		latencies    []time.Duration
		lastDone     time.Time
		err          error
	}
	results := make([]workerResult, o.Workers)
	var wg sync.WaitGroup
	for w := range o.Workers {
		wg.Go(func() {
			res := &results[w]
			res.failures = map[string]int{}
			res.latencies = make([]time.Duration, 0, 4096)
			var buf bytes.Buffer
			for ctx.Err() == nil && time.Now().Before(stop) {
				body, err := src.take()
				if err != nil {
					res.err = err
					return
				}
				if o.AuthMethod == "client_secret_post" {
					body += postSuffix
				}
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, strings.NewReader(body))
				if err != nil {
					res.err = err
					return
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("Accept", "application/json")
				if o.AuthMethod == "client_secret_basic" {
					req.SetBasicAuth(basicID, basicSecret)
				}
				t0 := time.Now()
				resp, err := client.Do(req)
				var failure string
				if err != nil {
					var uerr *url.Error
					if errors.As(err, &uerr) {
						err = uerr.Err
					}
					failure = "transport: " + err.Error()
				} else {
					buf.Reset()
					_, err = buf.ReadFrom(io.LimitReader(resp.Body, 1<<20))
					resp.Body.Close()
					failure = classify(resp.StatusCode, buf.Bytes(), err)
				}
				done := time.Now()
				if t0.Before(measureFrom) {
					continue // warm-up
				}
				res.requests++
				res.latencies = append(res.latencies, done.Sub(t0))
				res.lastDone = done
				if failure == "" {
					res.ok++
				} else {
					res.failures[failure]++
					if resp == nil {
						// The connection failed: do not spin on a dead server.
						time.Sleep(10 * time.Millisecond)
					}
				}
			}
		})
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}

	out := &loadResult{Workers: o.Workers, Failures: map[string]int{}, Dials: dials.Load(), InlineMinted: src.inline.Load()}
	var last time.Time
	var errs error
	for _, r := range results {
		errs = errors.Join(errs, r.err)
		out.Requests += r.requests
		out.OK += r.ok
		for k, n := range r.failures {
			out.Failures[k] += n
		}
		out.latencies = append(out.latencies, r.latencies...)
		if r.lastDone.After(last) {
			last = r.lastDone
		}
	}
	if errs != nil {
		return nil, errs
	}
	if out.Requests > 0 {
		out.Elapsed = last.Sub(measureFrom)
	}
	slices.Sort(out.latencies)
	return out, nil
}

// replayCheck sends one assertion twice, one after the other, on one
// connection: the first must be redeemed and the second refused, or the
// endpoint is not enforcing single use and its numbers mean nothing here.
// It returns how the second was refused.
func replayCheck(ctx context.Context, o loadOptions, src *bodySource) (string, error) {
	body, err := src.take()
	if err != nil {
		return "", err
	}
	one := o
	one.Workers, one.Warmup, one.Duration = 1, 0, time.Hour
	var outcomes []string
	for range 2 {
		got, err := sendOnce(ctx, one, body)
		if err != nil {
			return "", fmt.Errorf("replay check: %w", err)
		}
		outcomes = append(outcomes, got)
	}
	if outcomes[0] != "" {
		return "", fmt.Errorf("replay check: a fresh assertion was refused: %s", outcomes[0])
	}
	if outcomes[1] == "" {
		return "", errors.New("replay check: the same assertion was redeemed twice; single use is off")
	}
	return "second presentation refused with " + outcomes[1], nil
}

// sendOnce posts one token request and classifies the answer.
func sendOnce(ctx context.Context, o loadOptions, body string) (string, error) {
	if o.AuthMethod == "client_secret_post" {
		body += "&" + url.Values{"client_id": {o.ClientID}, "client_secret": {o.ClientSecret}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, o.URL, strings.NewReader(body))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if o.AuthMethod == "client_secret_basic" {
		req.SetBasicAuth(url.QueryEscape(o.ClientID), url.QueryEscape(o.ClientSecret))
	}
	c := &http.Client{Timeout: o.Timeout}
	resp, err := c.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return classify(resp.StatusCode, data, err), nil
}

// classify returns "" for a successful token response and a short
// description of anything else: the status and the OAuth error code.
func classify(status int, body []byte, readErr error) string {
	if readErr != nil {
		return fmt.Sprintf("%d body read: %v", status, readErr)
	}
	if status == http.StatusOK {
		if bytes.Contains(body, []byte(`"access_token"`)) {
			return ""
		}
		return "200 without access_token"
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil || e.Error == "" {
		return fmt.Sprintf("%d (no OAuth error)", status)
	}
	return fmt.Sprintf("%d %s", status, e.Error)
}

// paramFlag collects repeated -param name=value flags.
type paramFlag url.Values

func (p paramFlag) String() string { return url.Values(p).Encode() }

func (p paramFlag) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return fmt.Errorf("%q: want name=value", s)
	}
	switch name {
	case "grant_type", "assertion", "client_id", "client_secret":
		return fmt.Errorf("%q is set by the load generator", name)
	}
	url.Values(p).Add(name, value)
	return nil
}

// loadCmd parses the flags, mints the pool, runs the load and prints the
// result.
func loadCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	var (
		o    loadOptions
		spec assertionSpec
	)
	params := paramFlag{}
	fs.StringVar(&o.URL, "url", "", "token endpoint URL (required)")
	fs.StringVar(&o.ClientID, "client-id", "", "client_id to authenticate as (required)")
	fs.StringVar(&o.ClientSecret, "client-secret", "", "client secret (required)")
	fs.StringVar(&o.AuthMethod, "auth", "client_secret_basic", "client_secret_basic or client_secret_post")
	fs.IntVar(&o.Workers, "workers", 16, "concurrent workers, one keep-alive connection each")
	fs.DurationVar(&o.Duration, "duration", 20*time.Second, "measured time")
	fs.DurationVar(&o.Warmup, "warmup", 3*time.Second, "load sent before measuring, not counted")
	fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "per-request timeout")
	keyPath := fs.String("key", "", "PKCS#8 PEM signing key written by keygen (required)")
	fs.StringVar(&spec.Issuer, "iss", "", "assertion iss (required)")
	fs.StringVar(&spec.Audience, "aud", "", "assertion aud (required): OpenXAA wants its issuer, Hydra its token URL")
	fs.StringVar(&spec.ClientID, "client-claim", "", "assertion client_id claim; empty means -client-id")
	fs.StringVar(&spec.SubPrefix, "sub-prefix", "user-", "assertion sub is this plus a number below -subjects")
	fs.IntVar(&spec.Subjects, "subjects", 1000, "distinct subjects, cycled")
	fs.StringVar(&spec.Resource, "resource", "", "assertion resource claim (omitted when empty)")
	fs.StringVar(&spec.Scope, "scope", "", "assertion scope claim (omitted when empty)")
	fs.StringVar(&spec.Type, "typ", "oauth-id-jag+jwt", "JWS typ header (empty: none)")
	fs.DurationVar(&spec.Lifetime, "lifetime", 5*time.Minute, "assertion exp - iat")
	fs.Var(params, "param", "extra form parameter name=value, repeatable (e.g. resource=..., scope=...)")
	premint := fs.Int("premint", -1, "assertions signed before the load starts, beyond which each is signed during the load; -1 means enough for 4,000/s")
	serverPID := fs.Int("server-pid", 0, "if set, report this process's CPU per request (Linux)")
	pgDB := fs.String("pg-db", "", "if set, also report the CPU per request of the PostgreSQL backends serving this database (Linux)")
	checkReplay := fs.Bool("check-replay", true, "first send one assertion twice and require the second to be refused")
	jsonOut := fs.Bool("json", false, "print one JSON object instead of text")
	label := fs.String("label", "", "label printed with the result")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.URL == "" || o.ClientID == "" || o.ClientSecret == "" || *keyPath == "" {
		return errors.New("load: -url, -client-id, -client-secret and -key are required")
	}
	if spec.ClientID == "" {
		spec.ClientID = o.ClientID
	}
	// A pre-minted assertion must still be valid when it is sent.
	if o.Warmup+o.Duration+30*time.Second > spec.Lifetime {
		return fmt.Errorf("load: -warmup + -duration (%s) leave less than 30 s of the %s -lifetime", o.Warmup+o.Duration, spec.Lifetime)
	}
	if *premint < 0 {
		// Signing during the load would take CPU from the server on a
		// small machine; the report says if the pool ran out.
		*premint = 1 + int(4000*(o.Warmup+o.Duration).Seconds())
	}
	k, err := loadSigningKey(*keyPath)
	if err != nil {
		return err
	}
	m, err := newMinter(k, spec, url.Values(params))
	if err != nil {
		return err
	}
	t0 := time.Now()
	pool, err := m.bodies(0, *premint)
	if err != nil {
		return err
	}
	mintTook := time.Since(t0)

	src := &bodySource{m: m, pool: pool}
	replay := "not checked"
	if *checkReplay {
		if replay, err = replayCheck(ctx, o, src); err != nil {
			return err
		}
	}

	loadBefore := loadAverage()
	cpuSelf0, _ := processCPU(0)
	var cpuServer0 time.Duration
	if *serverPID != 0 {
		if cpuServer0, err = processCPU(*serverPID); err != nil {
			return fmt.Errorf("load: -server-pid: %w", err)
		}
	}
	var pg0 map[int]time.Duration
	if *pgDB != "" {
		if pg0, err = postgresBackendsCPU(*pgDB); err != nil {
			return fmt.Errorf("load: -pg-db: %w", err)
		}
	}
	taken0 := src.next.Load() // the replay check's
	res, err := drive(ctx, o, src)
	if err != nil {
		return err
	}
	var pgCPU time.Duration
	if *pgDB != "" {
		// Backends that started during the load count from zero; those
		// that exited during it (a pool closing idle connections) are
		// missed, so this is a lower bound.
		pg1, _ := postgresBackendsCPU(*pgDB)
		for pid, cpu := range pg1 {
			pgCPU += cpu - pg0[pid]
		}
	}
	cpuSelf1, _ := processCPU(0)
	var cpuServer1 time.Duration
	if *serverPID != 0 {
		cpuServer1, _ = processCPU(*serverPID)
	}
	loadAfter := loadAverage()

	report := struct {
		Label         string         `json:"label,omitempty"`
		URL           string         `json:"url"`
		Alg           string         `json:"alg"`
		Workers       int            `json:"workers"`
		Seconds       float64        `json:"seconds"`
		Requests      int            `json:"requests"`
		OK            int            `json:"ok"`
		Failures      map[string]int `json:"failures"`
		PerSecond     float64        `json:"redemptions_per_s"`
		P50ms         float64        `json:"p50_ms"`
		P90ms         float64        `json:"p90_ms"`
		P99ms         float64        `json:"p99_ms"`
		MaxMs         float64        `json:"max_ms"`
		Dials         int64          `json:"connections_opened"`
		Premint       int            `json:"preminted"`
		MintSeconds   float64        `json:"premint_s"`
		InlineMinted  int64          `json:"inline_minted"`
		LoadgenCPUus  float64        `json:"loadgen_cpu_us_per_req,omitempty"`
		ServerCPUus   float64        `json:"server_cpu_us_per_req,omitempty"`
		PostgresCPUus float64        `json:"postgres_cpu_us_per_req,omitempty"`
		LoadAvgBefore string         `json:"loadavg_before"`
		LoadAvgAfter  string         `json:"loadavg_after"`
		Replay        string         `json:"replay_check"`
	}{
		Label: *label, URL: o.URL, Alg: string(k.alg), Workers: o.Workers,
		Seconds: res.Elapsed.Seconds(), Requests: res.Requests, OK: res.OK, Failures: res.Failures,
		PerSecond: res.rate(),
		P50ms:     ms(res.percentile(0.50)), P90ms: ms(res.percentile(0.90)),
		P99ms: ms(res.percentile(0.99)), MaxMs: ms(res.percentile(1)),
		Dials: res.Dials, Premint: *premint, MintSeconds: mintTook.Seconds(), InlineMinted: res.InlineMinted,
		LoadAvgBefore: loadBefore, LoadAvgAfter: loadAfter, Replay: replay,
	}
	// The CPU measured above was used by every request sent, warm-up
	// included: one body each.
	if sent := src.next.Load() - taken0; sent > 0 {
		if d := cpuSelf1 - cpuSelf0; d > 0 {
			report.LoadgenCPUus = float64(d.Microseconds()) / float64(sent)
		}
		if d := cpuServer1 - cpuServer0; *serverPID != 0 && d > 0 {
			report.ServerCPUus = float64(d.Microseconds()) / float64(sent)
		}
		if pgCPU > 0 {
			report.PostgresCPUus = float64(pgCPU.Microseconds()) / float64(sent)
		}
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		return enc.Encode(report)
	}
	var b strings.Builder
	if report.Label != "" {
		fmt.Fprintf(&b, "%s\n", report.Label)
	}
	fmt.Fprintf(&b, "  %s, %s assertions, %d workers, %.1f s measured (+%s warm-up)\n", o.URL, k.alg, o.Workers, report.Seconds, o.Warmup)
	fmt.Fprintf(&b, "  redemptions/s %.0f   p50 %.2f ms   p90 %.2f ms   p99 %.2f ms   max %.2f ms\n", report.PerSecond, report.P50ms, report.P90ms, report.P99ms, report.MaxMs)
	fmt.Fprintf(&b, "  requests %d   ok %d   failed %d\n", report.Requests, report.OK, report.Requests-report.OK)
	for _, k := range slices.Sorted(maps.Keys(report.Failures)) {
		fmt.Fprintf(&b, "    %6d  %s\n", report.Failures[k], k)
	}
	fmt.Fprintf(&b, "  connections opened %d   pre-minted %d in %.1f s   signed during load %d\n", report.Dials, report.Premint, report.MintSeconds, report.InlineMinted)
	if report.LoadgenCPUus > 0 {
		fmt.Fprintf(&b, "  CPU per request: load generator %.0f us", report.LoadgenCPUus)
		if report.ServerCPUus > 0 {
			fmt.Fprintf(&b, "   server process %.0f us", report.ServerCPUus)
		}
		if report.PostgresCPUus > 0 {
			fmt.Fprintf(&b, "   PostgreSQL backends %.0f us", report.PostgresCPUus)
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "  replay check: %s\n", report.Replay)
	fmt.Fprintf(&b, "  load average before %s   after %s\n", report.LoadAvgBefore, report.LoadAvgAfter)
	_, err = io.WriteString(stdout, b.String())
	return err
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }
