package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func newTrustedIssuer(realm string) store.TrustedIssuer {
	at := now()
	iss := newID("https://idp.example.com/t")
	return store.TrustedIssuer{
		Realm: realm, Issuer: iss, JWKSURI: iss + "/jwks.json",
		CreatedAt: at, UpdatedAt: at,
	}
}

func testTrustedIssuers(t *testing.T, s store.Tx) {
	t.Run("CreateGetList", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		realm := newID("https://as.example.com/r")
		a := newTrustedIssuer(realm) // minimal
		b := newTrustedIssuer(realm)
		b.Algorithms, b.MaxAssertionLifetime, b.AllowReuse, b.Disabled = []string{"EdDSA", "ES256"}, 10*time.Minute, true, true
		b.JWKSURI = "http://127.0.0.1:8080/idp/jwks.json?v=2"
		for _, ti := range []store.TrustedIssuer{b, a} {
			noErr(t, "CreateTrustedIssuer", s.CreateTrustedIssuer(ctx, ti))
		}
		for _, ti := range []store.TrustedIssuer{a, b} {
			got, err := s.GetTrustedIssuer(ctx, realm, ti.Issuer)
			noErr(t, "GetTrustedIssuer", err)
			if d := cmp.Diff(ti, got); d != "" {
				t.Errorf("GetTrustedIssuer (-want +got):\n%s", d)
			}
		}
		// Another realm's rows are not listed; rows come by issuer.
		noErr(t, "CreateTrustedIssuer other realm", s.CreateTrustedIssuer(ctx, newTrustedIssuer(realm+"/other")))
		want := []store.TrustedIssuer{a, b}
		if a.Issuer > b.Issuer {
			want = []store.TrustedIssuer{b, a}
		}
		got, err := s.ListTrustedIssuers(ctx, realm)
		noErr(t, "ListTrustedIssuers", err)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("ListTrustedIssuers (-want +got):\n%s", d)
		}
		// The same issuer may be trusted by another realm; not twice by one.
		dup := a
		dup.JWKSURI = "https://elsewhere.example.com/jwks"
		wantErr(t, "CreateTrustedIssuer duplicate", s.CreateTrustedIssuer(ctx, dup), store.ErrConflict)
		other := a
		other.Realm = realm + "/second"
		noErr(t, "CreateTrustedIssuer same issuer, other realm", s.CreateTrustedIssuer(ctx, other))
		_, err = s.GetTrustedIssuer(ctx, realm, newID("https://nobody.example.com"))
		wantErr(t, "GetTrustedIssuer absent", err, store.ErrNotFound)
	})

	t.Run("Invalid", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		realm := newID("https://as.example.com/r")
		for name, edit := range map[string]func(*store.TrustedIssuer){
			"own issuer":        func(ti *store.TrustedIssuer) { ti.Issuer = ti.Realm },
			"pipe":              func(ti *store.TrustedIssuer) { ti.Issuer += "|x" },
			"empty issuer":      func(ti *store.TrustedIssuer) { ti.Issuer = "" },
			"empty realm":       func(ti *store.TrustedIssuer) { ti.Realm = "" },
			"space in issuer":   func(ti *store.TrustedIssuer) { ti.Issuer += " x" },
			"jwks relative":     func(ti *store.TrustedIssuer) { ti.JWKSURI = "/jwks.json" },
			"jwks ftp":          func(ti *store.TrustedIssuer) { ti.JWKSURI = "ftp://idp.example.com/jwks" },
			"jwks userinfo":     func(ti *store.TrustedIssuer) { ti.JWKSURI = "https://u:p@idp.example.com/jwks" },
			"jwks too long":     func(ti *store.TrustedIssuer) { ti.JWKSURI = "https://idp.example.com/" + strings.Repeat("j", 2100) },
			"alg HS256":         func(ti *store.TrustedIssuer) { ti.Algorithms = []string{"HS256"} },
			"alg none":          func(ti *store.TrustedIssuer) { ti.Algorithms = []string{"none"} },
			"alg twice":         func(ti *store.TrustedIssuer) { ti.Algorithms = []string{"ES256", "ES256"} },
			"lifetime over cap": func(ti *store.TrustedIssuer) { ti.MaxAssertionLifetime = 601 * time.Second },
			"lifetime fraction": func(ti *store.TrustedIssuer) { ti.MaxAssertionLifetime = 1500 * time.Millisecond },
			"lifetime negative": func(ti *store.TrustedIssuer) { ti.MaxAssertionLifetime = -time.Second },
			"no times":          func(ti *store.TrustedIssuer) { ti.CreatedAt = time.Time{} },
		} {
			ti := newTrustedIssuer(realm)
			edit(&ti)
			wantErr(t, "CreateTrustedIssuer "+name, s.CreateTrustedIssuer(ctx, ti), store.ErrInvalid)
		}
		got, err := s.ListTrustedIssuers(ctx, realm)
		noErr(t, "ListTrustedIssuers", err)
		if len(got) != 0 {
			t.Errorf("refused rows were stored: %+v", got)
		}
	})

	t.Run("Update", func(t *testing.T) {
		t.Parallel()
		ctx := t.Context()
		realm := newID("https://as.example.com/r")
		ti := newTrustedIssuer(realm)
		noErr(t, "CreateTrustedIssuer", s.CreateTrustedIssuer(ctx, ti))
		later := ti.UpdatedAt.Add(time.Minute)
		noErr(t, "UpdateTrustedIssuer", s.UpdateTrustedIssuer(ctx, realm, ti.Issuer, func(c store.TrustedIssuer) (store.TrustedIssuer, error) {
			c.Disabled, c.Algorithms, c.MaxAssertionLifetime, c.JWKSURI, c.UpdatedAt = true, []string{"PS256"}, time.Minute, ti.JWKSURI+"?v=2", later
			return c, nil
		}))
		want := ti
		want.Disabled, want.Algorithms, want.MaxAssertionLifetime, want.JWKSURI, want.UpdatedAt = true, []string{"PS256"}, time.Minute, ti.JWKSURI+"?v=2", later
		got, err := s.GetTrustedIssuer(ctx, realm, ti.Issuer)
		noErr(t, "GetTrustedIssuer", err)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("after update (-want +got):\n%s", d)
		}
		for name, edit := range map[string]func(store.TrustedIssuer) store.TrustedIssuer{
			"issuer":  func(c store.TrustedIssuer) store.TrustedIssuer { c.Issuer += "/x"; return c },
			"realm":   func(c store.TrustedIssuer) store.TrustedIssuer { c.Realm += "/x"; return c },
			"created": func(c store.TrustedIssuer) store.TrustedIssuer { c.CreatedAt = c.CreatedAt.Add(time.Second); return c },
			"invalid": func(c store.TrustedIssuer) store.TrustedIssuer { c.Algorithms = []string{"HS256"}; return c },
		} {
			err := s.UpdateTrustedIssuer(ctx, realm, ti.Issuer, func(c store.TrustedIssuer) (store.TrustedIssuer, error) { return edit(c), nil })
			wantErr(t, "UpdateTrustedIssuer "+name, err, store.ErrInvalid)
		}
		errFn := errors.New("storetest: refused")
		err = s.UpdateTrustedIssuer(ctx, realm, ti.Issuer, func(store.TrustedIssuer) (store.TrustedIssuer, error) { return store.TrustedIssuer{}, errFn })
		wantErr(t, "UpdateTrustedIssuer fn error", err, errFn)
		got, err = s.GetTrustedIssuer(ctx, realm, ti.Issuer)
		noErr(t, "GetTrustedIssuer", err)
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("refused updates changed the row (-want +got):\n%s", d)
		}
		err = s.UpdateTrustedIssuer(ctx, realm, newID("https://nobody.example.com"), func(c store.TrustedIssuer) (store.TrustedIssuer, error) { return c, nil })
		wantErr(t, "UpdateTrustedIssuer absent", err, store.ErrNotFound)
	})
}

func (p perCallTx) CreateTrustedIssuer(ctx context.Context, t store.TrustedIssuer) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.CreateTrustedIssuer(ctx, t) })
}

func (p perCallTx) GetTrustedIssuer(ctx context.Context, realm, issuer string) (t store.TrustedIssuer, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { t, err = tx.GetTrustedIssuer(ctx, realm, issuer); return err })
	return t, err
}

func (p perCallTx) ListTrustedIssuers(ctx context.Context, realm string) (ts []store.TrustedIssuer, err error) {
	err = p.s.InTx(ctx, func(tx store.Tx) (err error) { ts, err = tx.ListTrustedIssuers(ctx, realm); return err })
	return ts, err
}

func (p perCallTx) UpdateTrustedIssuer(ctx context.Context, realm, issuer string, fn func(store.TrustedIssuer) (store.TrustedIssuer, error)) error {
	return p.s.InTx(ctx, func(tx store.Tx) error { return tx.UpdateTrustedIssuer(ctx, realm, issuer, fn) })
}
