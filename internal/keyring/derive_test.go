package keyring

import (
	"bytes"
	"testing"
)

func TestDeriveKey(t *testing.T) {
	t.Parallel()
	wk := bytes.Repeat([]byte{7}, WrappingKeySize)
	a1, err := DeriveKey(wk, "audit")
	if err != nil {
		t.Fatal(err)
	}
	a2, _ := DeriveKey(wk, "audit")
	b, _ := DeriveKey(wk, "cookies")
	other, _ := DeriveKey(bytes.Repeat([]byte{8}, WrappingKeySize), "audit")
	if len(a1) != 32 || !bytes.Equal(a1, a2) {
		t.Fatalf("DeriveKey is not a deterministic 32-byte key: %x %x", a1, a2)
	}
	if bytes.Equal(a1, b) || bytes.Equal(a1, other) || bytes.Equal(a1, wk) {
		t.Fatal("derived keys for different purposes or wrapping keys collide")
	}
	for name, tc := range map[string]struct {
		wk      []byte
		purpose string
	}{
		"empty purpose": {wk, ""},
		"short key":     {wk[:16], "audit"},
		"all-zero key":  {make([]byte, WrappingKeySize), "audit"},
		"nil key":       {nil, "audit"},
	} {
		if _, err := DeriveKey(tc.wk, tc.purpose); err == nil {
			t.Errorf("%s: DeriveKey succeeded", name)
		}
	}
}
