package jose

import (
	"context"
	"strings"
	"testing"
	"time"
)

// accessTokenBenchClaims is what the AS puts into an access token.
type accessTokenBenchClaims struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Audience string   `json:"aud"`
	ClientID string   `json:"client_id"`
	ID       string   `json:"jti"`
	IssuedAt int64    `json:"iat"`
	Expiry   int64    `json:"exp"`
	Scope    string   `json:"scope"`
	ACR      string   `json:"acr,omitempty"`
	AMR      []string `json:"amr,omitempty"`
	AuthTime int64    `json:"auth_time,omitempty"`
	GrantID  string   `json:"id_jag_jti,omitempty"`
}

func benchVerify(b *testing.B, key func(*fixture) *testKey) {
	fx := newFixture(b)
	raw := key(fx).token(b, TypeIDJAG, idJAGClaims())
	p, want, ctx := IDJAGProfile(), expectFor(IDJAGProfile()), context.Background()
	if _, err := Verify(ctx, raw, p, fx.issuers, want); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, raw, p, fx.issuers, want); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerifyIDJAG(b *testing.B) {
	benchVerify(b, func(fx *fixture) *testKey { return fx.es })
}

func BenchmarkVerifyIDJAG_EdDSA(b *testing.B) {
	benchVerify(b, func(fx *fixture) *testKey { return fx.ed })
}

func BenchmarkVerifyIDJAG_RS256(b *testing.B) {
	benchVerify(b, func(fx *fixture) *testKey { return fx.rs })
}

func BenchmarkSignAccessToken(b *testing.B) {
	fx := newFixture(b)
	s, err := NewLocalSigner(fx.es.priv, ES256)
	if err != nil {
		b.Fatal(err)
	}
	now := testNow()
	claims := accessTokenBenchClaims{
		Issuer: asIssuer, Subject: "00u1a2b3c4d5e6f7g8h9", Audience: resource, ClientID: "mcp-client-4f1c9a",
		ID: "7a0f2c1e-6b8d-4e3a-9c5f-1d2e3f4a5b6c", IssuedAt: now.Unix(), Expiry: now.Add(5 * time.Minute).Unix(),
		Scope: "tools.read tools.write files.read", ACR: "urn:openxaa:acr:mfa", AMR: []string{"pwd", "otp"},
		AuthTime: now.Add(-time.Minute).Unix(), GrantID: "0d9c8b7a-6f5e-4d3c-2b1a-0f9e8d7c6b5a",
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.Sign(ctx, TypeAccessToken, claims); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRejectDots7000 is the CVE-2025-27144 shape: many dots must cost
// neither time nor memory.
func BenchmarkRejectDots7000(b *testing.B) {
	fx := newFixture(b)
	raw := strings.Repeat(".", 7000)
	p, want, ctx := IDJAGProfile(), expectFor(IDJAGProfile()), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, raw, p, fx.issuers, want); err == nil {
			b.Fatal("accepted")
		}
	}
}

// BenchmarkRejectOversized is the size cap: refused before any scan.
func BenchmarkRejectOversized(b *testing.B) {
	fx := newFixture(b)
	raw := strings.Repeat("A", 1<<20)
	p, want, ctx := IDJAGProfile(), expectFor(IDJAGProfile()), context.Background()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Verify(ctx, raw, p, fx.issuers, want); err == nil {
			b.Fatal("accepted")
		}
	}
}
