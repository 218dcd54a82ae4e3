package directory

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/store"
)

// rfc6238Secret is the SHA-1 seed of RFC 6238 Appendix B.
const rfc6238Secret = "12345678901234567890"

func TestTOTPRFC6238Vectors(t *testing.T) {
	t.Parallel()
	// Appendix B gives 8-digit codes; a 6-digit code is the same value
	// mod 10^6, that is, its last six digits.
	for _, tc := range []struct {
		unix int64
		want string
	}{
		{59, "94287082"},
		{1111111109, "07081804"},
		{1111111111, "14050471"},
		{1234567890, "89005924"},
		{2000000000, "69279037"},
		{20000000000, "65353130"},
	} {
		now := time.Unix(tc.unix, 0)
		step := TOTPStep(now)
		if want := tc.unix / 30; step != want {
			t.Errorf("TOTPStep(%d) = %d, want %d", tc.unix, step, want)
		}
		code := TOTPCode([]byte(rfc6238Secret), step)
		if code != tc.want[2:] {
			t.Errorf("T=%d: code %s, want %s", tc.unix, code, tc.want[2:])
		}
		got, err := ValidateTOTP([]byte(rfc6238Secret), tc.want[2:], now)
		if err != nil || got != step {
			t.Errorf("T=%d: ValidateTOTP = %d, %v; want step %d", tc.unix, got, err, step)
		}
	}
}

func TestValidateTOTPWindow(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_015, 0) // mid-step
	cur := TOTPStep(now)
	for d := int64(-3); d <= 3; d++ {
		code := TOTPCode([]byte(rfc6238Secret), cur+d)
		step, err := ValidateTOTP([]byte(rfc6238Secret), code, now)
		inWindow := d >= -1 && d <= 1
		switch {
		case inWindow && (err != nil || step != cur+d):
			t.Errorf("offset %d: ValidateTOTP = %d, %v; want step %d", d, step, err, cur+d)
		case !inWindow && (!errors.Is(err, ErrTOTPInvalid) || step != 0):
			// A code from outside the window might collide with one inside
			// (1 in 10^6); these fixed vectors do not.
			t.Errorf("offset %d: ValidateTOTP = %d, %v; want ErrTOTPInvalid", d, step, err)
		}
	}
	// Step boundaries: the first and last second of a step belong to it.
	start := time.Unix(cur*30, 0)
	for _, at := range []time.Time{start, start.Add(29 * time.Second)} {
		if s, err := ValidateTOTP([]byte(rfc6238Secret), TOTPCode([]byte(rfc6238Secret), cur-1), at); err != nil || s != cur-1 {
			t.Errorf("at %v: previous step's code = %d, %v", at, s, err)
		}
	}
	if _, err := ValidateTOTP([]byte(rfc6238Secret), TOTPCode([]byte(rfc6238Secret), cur-1), start.Add(60*time.Second)); err == nil {
		t.Error("a code two steps old was accepted")
	}
}

func TestValidateTOTPRejects(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	good := TOTPCode([]byte(rfc6238Secret), TOTPStep(now))
	wrong := []byte(good)
	wrong[5] = '0' + (wrong[5]-'0'+1)%10
	for _, tc := range []struct {
		name, code string
		secret     []byte
	}{
		{"wrong digit", string(wrong), []byte(rfc6238Secret)},
		{"empty", "", []byte(rfc6238Secret)},
		{"five digits", good[:5], []byte(rfc6238Secret)},
		{"seven digits", good + "0", []byte(rfc6238Secret)},
		{"leading space", " " + good[1:], []byte(rfc6238Secret)},
		{"letters", "abcdef", []byte(rfc6238Secret)},
		{"plus sign", "+" + good[1:], []byte(rfc6238Secret)},
		{"unicode digits", "١٢٣٤٥٦", []byte(rfc6238Secret)},
		{"other secret", good, []byte("another secret of 20b")},
		{"no secret", good, nil},
	} {
		step, err := ValidateTOTP(tc.secret, tc.code, now)
		if !errors.Is(err, ErrTOTPInvalid) || step != 0 {
			t.Errorf("%s: ValidateTOTP(%q) = %d, %v; want ErrTOTPInvalid", tc.name, tc.code, step, err)
		}
	}
}

func TestTOTPReplayEntry(t *testing.T) {
	t.Parallel()
	now := time.Unix(1_700_000_000, 0)
	step := TOTPStep(now)
	e := TOTPReplayEntry("u_alice", step)
	if e.Namespace != store.NamespaceTOTP || e.Issuer != "u_alice" || e.JTI != "56666666" {
		t.Errorf("entry = %+v", e)
	}
	// It must outlive every window that accepts the step: the step is
	// accepted until the end of step+1.
	lastAccepted := time.Unix((step+2)*30, 0)
	if !e.ExpiresAt.After(lastAccepted) {
		t.Errorf("entry expires %v, before the code stops being valid at %v", e.ExpiresAt, lastAccepted)
	}
}

func TestTOTPSecretEncoding(t *testing.T) {
	t.Parallel()
	s, err := GenerateTOTPSecret()
	if err != nil || len(s) != 20 {
		t.Fatalf("GenerateTOTPSecret = %d bytes, %v", len(s), err)
	}
	enc := EncodeTOTPSecret(s)
	if len(enc) != 32 || strings.ContainsAny(enc, "=abcdefghijklmnopqrstuvwxyz") {
		t.Errorf("encoded secret %q is not 32 uppercase base32 characters", enc)
	}
	for _, in := range []string{enc, strings.ToLower(enc), enc[:4] + " " + enc[4:8] + "-" + enc[8:], enc + "===="} {
		got, err := ParseTOTPSecret(in)
		if err != nil || !bytes.Equal(got, s) {
			t.Errorf("ParseTOTPSecret(%q) = %x, %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "JBSWY3DP", "JBSWY3DPEHPK3PX1" + "JBSWY3DPEHPK3PXP", strings.Repeat("A", 104), "ÄBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"} {
		if _, err := ParseTOTPSecret(bad); !errors.Is(err, ErrTOTPSecret) {
			t.Errorf("ParseTOTPSecret(%q) = %v, want ErrTOTPSecret", bad, err)
		}
	}
}

func TestTOTPURI(t *testing.T) {
	t.Parallel()
	secret := []byte("12345678901234567890")
	raw := TOTPURI(secret, "Example Corp", "alice@example.com")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/Example Corp:alice@example.com" {
		t.Errorf("URI %q: scheme %q host %q path %q", raw, u.Scheme, u.Host, u.Path)
	}
	q := u.Query()
	want := map[string]string{"secret": "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "issuer": "Example Corp", "algorithm": "SHA1", "digits": "6", "period": "30"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if strings.Contains(raw, " ") {
		t.Errorf("URI %q has an unescaped space", raw)
	}
}

func TestTOTPSealing(t *testing.T) {
	t.Parallel()
	wk := bytes.Repeat([]byte{9}, keyring.WrappingKeySize)
	box, err := keyring.NewSecretBox(wk, TOTPSealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	secret := []byte("12345678901234567890")
	sealed, err := SealTOTPSecret(box, "u_alice", secret)
	if err != nil {
		t.Fatal(err)
	}
	got, err := OpenTOTPSecret(box, store.User{ID: "u_alice", TOTPSealed: sealed})
	if err != nil || !bytes.Equal(got, secret) {
		t.Fatalf("OpenTOTPSecret = %q, %v", got, err)
	}
	if _, err := OpenTOTPSecret(box, store.User{ID: "u_bob", TOTPSealed: sealed}); !errors.Is(err, keyring.ErrSealedSecretInvalid) {
		t.Errorf("another user's row opened the secret: %v", err)
	}
	if got, err := OpenTOTPSecret(box, store.User{ID: "u_carol"}); got != nil || err != nil {
		t.Errorf("no TOTP = %q, %v; want nil, nil", got, err)
	}
	if _, err := SealTOTPSecret(box, "u_alice", secret[:15]); !errors.Is(err, ErrTOTPSecret) {
		t.Errorf("sealing a 120-bit secret: %v", err)
	}
}

// BenchmarkTOTPValidate measures one code check (three HMAC-SHA-1).
func BenchmarkTOTPValidate(b *testing.B) {
	now, secret := time.Unix(1_700_000_000, 0), []byte(rfc6238Secret)
	code := TOTPCode(secret, TOTPStep(now))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ValidateTOTP(secret, code, now); err != nil {
			b.Fatal(err)
		}
	}
}
