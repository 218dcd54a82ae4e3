package sqlstore

import (
	"context"
	"crypto/sha256"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/openxaa/xaa/internal/store"
)

func TestInvalidInput(t *testing.T) {
	t.Parallel()
	exp := time.Now().Add(time.Hour)
	okTok := store.IssuedToken{JTI: "j", Issuer: "i", IssuedAt: time.Now(), ExpiresAt: exp}
	okKey := store.SigningKey{KID: "k", Owner: "o", Algorithm: "ES256", State: store.KeyNext, PublicJWK: []byte(`{}`), CreatedAt: time.Now()}
	digest := sha256.Sum256([]byte("s"))
	okClient := store.Client{ID: "c", Realm: "idp", SecretDigest: digest[:], CreatedAt: time.Now()}
	ev := func(mod func(*store.AuditEvent)) *store.AuditEvent {
		e := &store.AuditEvent{Type: "t"}
		mod(e)
		return e
	}
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			ctx := t.Context()
			if err := db.CreateSigningKey(ctx, okKey); err != nil {
				t.Fatal(err)
			}
			for _, tc := range []struct {
				name string
				call func() error
			}{
				{"replay empty namespace", func() error { return db.RecordOnce(ctx, store.ReplayEntry{JTI: "j", ExpiresAt: exp}) }},
				{"replay empty jti", func() error { return db.RecordOnce(ctx, store.ReplayEntry{Namespace: "n", ExpiresAt: exp}) }},
				{"replay zero expiry", func() error { return db.RecordOnce(ctx, store.ReplayEntry{Namespace: "n", JTI: "j"}) }},
				{"replay invalid UTF-8", func() error {
					return db.RecordOnce(ctx, store.ReplayEntry{Namespace: "n", JTI: "j\xff", ExpiresAt: exp})
				}},
				{"replay NUL", func() error {
					return db.RecordOnce(ctx, store.ReplayEntry{Namespace: "n", Issuer: "a\x00b", JTI: "j", ExpiresAt: exp})
				}},
				{"token empty jti", func() error { tok := okTok; tok.JTI = ""; return db.RecordToken(ctx, tok) }},
				{"token zero iat", func() error { tok := okTok; tok.IssuedAt = time.Time{}; return db.RecordToken(ctx, tok) }},
				{"token zero exp", func() error { tok := okTok; tok.ExpiresAt = time.Time{}; return db.RecordToken(ctx, tok) }},
				{"token NUL", func() error { tok := okTok; tok.Subject = "\x00"; return db.RecordToken(ctx, tok) }},
				{"get token invalid UTF-8", func() error { _, err := db.GetToken(ctx, "i", "\xc3"); return err }},
				{"revoke zero time", func() error { return db.RevokeToken(ctx, "i", "j", time.Time{}) }},
				{"audit nil", func() error { return db.AppendAudit(ctx, nil) }},
				{"audit reason invalid UTF-8", func() error { return db.AppendAudit(ctx, ev(func(e *store.AuditEvent) { e.Reason = "\xff" })) }},
				{"audit data key invalid UTF-8", func() error {
					return db.AppendAudit(ctx, ev(func(e *store.AuditEvent) { e.Data = map[string]string{"\xff": "v"} }))
				}},
				{"audit data value NUL", func() error {
					return db.AppendAudit(ctx, ev(func(e *store.AuditEvent) { e.Data = map[string]string{"k": "a\x00"} }))
				}},
				{"list audit invalid UTF-8", func() error { _, err := db.ListAudit(ctx, store.AuditFilter{Subject: "\xff"}); return err }},
				{"key empty kid", func() error { k := okKey; k.KID = ""; return db.CreateSigningKey(ctx, k) }},
				{"key bad state", func() error { k := okKey; k.KID = "k2"; k.State = "compromised"; return db.CreateSigningKey(ctx, k) }},
				{"key JWK not JSON", func() error { k := okKey; k.KID = "k3"; k.PublicJWK = []byte("{"); return db.CreateSigningKey(ctx, k) }},
				{"key zero created", func() error { k := okKey; k.KID = "k4"; k.CreatedAt = time.Time{}; return db.CreateSigningKey(ctx, k) }},
				{"key update to bad state", func() error {
					return db.UpdateSigningKey(ctx, "o", "k", func(k store.SigningKey) (store.SigningKey, error) {
						k.State = "bogus"
						return k, nil
					})
				}},
				{"list keys invalid UTF-8", func() error { _, err := db.ListSigningKeys(ctx, "\xff"); return err }},
				{"client plaintext secret", func() error { c := okClient; c.SecretDigest = []byte("hunter2"); return db.CreateClient(ctx, c) }},
				{"client JWKS not JSON", func() error { c := okClient; c.JWKS = []byte("keys"); return db.CreateClient(ctx, c) }},
				{"client empty id", func() error { c := okClient; c.ID = ""; return db.CreateClient(ctx, c) }},
				{"client redirect invalid UTF-8", func() error {
					c := okClient
					c.RedirectURIs = []string{"https://x/\xff"}
					return db.CreateClient(ctx, c)
				}},
				{"get client NUL", func() error { _, err := db.GetClient(ctx, "idp", "\x00"); return err }},
			} {
				if err := tc.call(); !errors.Is(err, ErrInvalidInput) {
					t.Errorf("%s: err = %v, want ErrInvalidInput", tc.name, err)
				}
			}
			// Nothing above reached the tables.
			keys, err := db.ListSigningKeys(ctx, "o")
			if err != nil || len(keys) != 1 || keys[0].State != store.KeyNext {
				t.Errorf("ListSigningKeys = %+v, %v; want the one unchanged key", keys, err)
			}
			if n, err := db.VerifyAuditChain(ctx); err != nil || n != 0 {
				t.Errorf("VerifyAuditChain = %d, %v; want an empty chain", n, err)
			}
		})
	}
}

func TestOneActiveKeyPerOwner(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			ctx := t.Context()
			key := func(kid string, state store.KeyState) store.SigningKey {
				return store.SigningKey{KID: kid, Owner: "o", Algorithm: "ES256", State: state, PublicJWK: []byte(`{}`), CreatedAt: time.Now()}
			}
			for _, k := range []store.SigningKey{key("a", store.KeyActive), key("b", store.KeyNext)} {
				if err := db.CreateSigningKey(ctx, k); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.CreateSigningKey(ctx, key("c", store.KeyActive)); !errors.Is(err, store.ErrConflict) {
				t.Errorf("second active key: err = %v, want ErrConflict", err)
			}
			promote := func(k store.SigningKey) (store.SigningKey, error) { k.State = store.KeyActive; return k, nil }
			if err := db.UpdateSigningKey(ctx, "o", "b", promote); !errors.Is(err, store.ErrConflict) {
				t.Errorf("promoting while another key is active: err = %v, want ErrConflict", err)
			}
			// A rotation demotes first, then promotes, in one transaction.
			err := db.InTx(ctx, func(tx store.Tx) error {
				if err := tx.UpdateSigningKey(ctx, "o", "a", func(k store.SigningKey) (store.SigningKey, error) {
					k.State = store.KeyRetiring
					return k, nil
				}); err != nil {
					return err
				}
				return tx.UpdateSigningKey(ctx, "o", "b", promote)
			})
			if err != nil {
				t.Fatalf("rotation: %v", err)
			}
			keys, err := db.ListSigningKeys(ctx, "o")
			if err != nil {
				t.Fatal(err)
			}
			got := map[string]store.KeyState{}
			for _, k := range keys {
				got[k.KID] = k.State
			}
			if diff := cmp.Diff(map[string]store.KeyState{"a": store.KeyRetiring, "b": store.KeyActive}, got); diff != "" {
				t.Errorf("after rotation (-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnavailable(t *testing.T) {
	t.Parallel()

	t.Run("PostgresUnreachable", func(t *testing.T) {
		t.Parallel()
		ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
		defer cancel()
		db, err := Open(ctx, "postgres://postgres:s3cret@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", nil)
		if db != nil {
			_ = db.Close()
		}
		if !errors.Is(err, store.ErrUnavailable) {
			t.Fatalf("Open = %v, want ErrUnavailable", err)
		}
		if strings.Contains(err.Error(), "s3cret") {
			t.Errorf("error leaks the password: %v", err)
		}
	})

	for _, b := range backends() {
		t.Run(b.name+"/Deadline", func(t *testing.T) {
			t.Parallel()
			db := mustOpenMigrated(t, b.url(t))
			ctx, cancel := context.WithDeadline(t.Context(), time.Now().Add(-time.Second))
			defer cancel()
			_, err := db.GetToken(ctx, "i", "j")
			if !errors.Is(err, store.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
				t.Errorf("GetToken past deadline = %v, want ErrUnavailable and DeadlineExceeded", err)
			}
			if err := db.Ping(t.Context()); err != nil {
				t.Errorf("Ping: %v", err)
			}
		})
	}
}

func TestRoundTripTimesAreUTCMilliseconds(t *testing.T) {
	t.Parallel()
	db := mustOpenMigrated(t, sqliteTestURL(t.TempDir()+"/x.db"))
	loc := time.FixedZone("X", 5*3600)
	iat := time.Date(2026, 1, 2, 3, 4, 5, 678_901_234, loc)
	tok := store.IssuedToken{JTI: "j", Issuer: "i", IssuedAt: iat, ExpiresAt: iat.Add(time.Minute)}
	if err := db.RecordToken(t.Context(), tok); err != nil {
		t.Fatal(err)
	}
	got, err := db.GetToken(t.Context(), "i", "j")
	if err != nil {
		t.Fatal(err)
	}
	want := tok
	want.IssuedAt = time.Date(2026, 1, 1, 22, 4, 5, 678_000_000, time.UTC)
	want.ExpiresAt = want.IssuedAt.Add(time.Minute)
	if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" || got.IssuedAt.Location() != time.UTC {
		t.Errorf("GetToken (-want +got):\n%s (location %v)", diff, got.IssuedAt.Location())
	}
}
