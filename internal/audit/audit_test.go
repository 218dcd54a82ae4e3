package audit

import (
	"strings"
	"testing"
)

func TestTokenHMAC(t *testing.T) {
	t.Parallel()
	k1, k2 := []byte(strings.Repeat("k", 32)), []byte(strings.Repeat("j", 32))
	a := TokenHMAC(k1, "eyJ.token.sig")
	if len(a) != 64 || strings.Contains(a, "token") {
		t.Fatalf("TokenHMAC = %q, want 64 hex digits that do not contain the token", a)
	}
	if a != TokenHMAC(k1, "eyJ.token.sig") {
		t.Error("TokenHMAC is not deterministic")
	}
	if a == TokenHMAC(k2, "eyJ.token.sig") || a == TokenHMAC(k1, "eyJ.token.sig2") {
		t.Error("TokenHMAC collides across keys or tokens")
	}
	if TokenHMAC(k1, "") != "" {
		t.Error("an empty token must have no reference")
	}
}

func TestClip(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"", 0}, {"short", 5}, {strings.Repeat("x", MaxValue), MaxValue}, {strings.Repeat("x", MaxValue+1), MaxValue + 3},
	} {
		if got := Clip(tc.in); len(got) != tc.want {
			t.Errorf("len(Clip(%d bytes)) = %d, want %d", len(tc.in), len(got), tc.want)
		}
	}
}
