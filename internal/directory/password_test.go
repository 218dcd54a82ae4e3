package directory

import (
	"errors"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// fastParams keep tests quick; production uses DefaultArgon2Params.
func fastParams() *Argon2Params {
	return &Argon2Params{MemoryKiB: 64, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32}
}

func newFastHasher(tb testing.TB) *PasswordHasher {
	tb.Helper()
	h, err := NewPasswordHasher(fastParams())
	if err != nil {
		tb.Fatal(err)
	}
	return h
}

func TestHashAndCheckPassword(t *testing.T) {
	t.Parallel()
	h := newFastHasher(t)
	const pw = "correct horse battery staple ✓"
	enc, err := h.HashPassword(pw)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(enc, "$argon2id$v=19$m=64,t=1,p=1$") || strings.Contains(enc, "=$") || strings.HasSuffix(enc, "=") {
		t.Fatalf("hash %q is not an unpadded PHC argon2id string", enc)
	}
	if err := CheckPassword(enc, pw); err != nil {
		t.Errorf("CheckPassword(right password) = %v", err)
	}
	again, _ := h.HashPassword(pw)
	if again == enc {
		t.Error("two hashes of one password are equal: the salt is not random")
	}
	for _, wrong := range []string{"", "correct horse battery staple", pw + " ", strings.ToUpper(pw), pw[:len(pw)-1]} {
		if err := CheckPassword(enc, wrong); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("CheckPassword(%q) = %v, want ErrPasswordMismatch", wrong, err)
		}
	}
	if h.NeedsRehash(enc) {
		t.Error("NeedsRehash of a hash with the hasher's own parameters")
	}
	// Default parameters work end to end too (once, they are slow-ish).
	def, err := NewPasswordHasher(nil)
	if err != nil {
		t.Fatal(err)
	}
	enc, err = def.HashPassword(pw)
	if err != nil || !strings.HasPrefix(enc, "$argon2id$v=19$m=19456,t=2,p=1$") || CheckPassword(enc, pw) != nil {
		t.Errorf("default hash %q, %v", enc, err)
	}
	if !def.NeedsRehash("$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g") {
		t.Error("NeedsRehash with other parameters = false")
	}
}

func TestHashPasswordPolicy(t *testing.T) {
	t.Parallel()
	h := newFastHasher(t)
	for _, tc := range []struct {
		name string
		pw   string
		ok   bool
	}{
		{"empty", "", false},
		{"7 bytes", "1234567", false},
		{"8 bytes", "12345678", true},
		{"1024 bytes", strings.Repeat("a", 1024), true},
		{"1025 bytes", strings.Repeat("a", 1025), false},
		{"invalid UTF-8", "abcdefgh\xff", false},
		{"4 runes, 8 bytes", "ééé\u00e9", true},
	} {
		_, err := h.HashPassword(tc.pw)
		if tc.ok != (err == nil) || (err != nil && !errors.Is(err, ErrPasswordPolicy)) {
			t.Errorf("%s: HashPassword = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestNewPasswordHasherRejects(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mod  func(*Argon2Params)
	}{
		{"zero memory", func(p *Argon2Params) { p.MemoryKiB = 0 }},
		{"memory below 8p", func(p *Argon2Params) { p.Parallelism, p.MemoryKiB = 4, 31 }},
		{"memory above 256 MiB", func(p *Argon2Params) { p.MemoryKiB = 256<<10 + 1 }},
		{"zero iterations", func(p *Argon2Params) { p.Iterations = 0 }},
		{"17 iterations", func(p *Argon2Params) { p.Iterations = 17 }},
		{"zero parallelism", func(p *Argon2Params) { p.Parallelism = 0 }},
		{"short salt", func(p *Argon2Params) { p.SaltLen = 8 }},
		{"short key", func(p *Argon2Params) { p.KeyLen = 15 }},
		{"long key", func(p *Argon2Params) { p.KeyLen = 65 }},
	} {
		p := DefaultArgon2Params()
		tc.mod(&p)
		if h, err := NewPasswordHasher(&p); err == nil || h != nil {
			t.Errorf("%s: NewPasswordHasher accepted %+v", tc.name, p)
		}
	}
}

func TestCheckPasswordBcrypt(t *testing.T) {
	t.Parallel()
	const pw = "legacy-password"
	h := newFastHasher(t)
	for _, prefix := range []string{"$2a$", "$2b$", "$2y$"} {
		enc, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		s := prefix + string(enc[4:])
		if err := CheckPasswordHash(s); err != nil {
			t.Errorf("%s: CheckPasswordHash = %v", prefix, err)
		}
		if err := CheckPassword(s, pw); err != nil {
			t.Errorf("%s: CheckPassword(right) = %v", prefix, err)
		}
		if err := CheckPassword(s, pw+"x"); !errors.Is(err, ErrPasswordMismatch) {
			t.Errorf("%s: CheckPassword(wrong) = %v", prefix, err)
		}
		if !h.NeedsRehash(s) {
			t.Errorf("%s: NeedsRehash(bcrypt) = false; bcrypt hashes are upgraded on login", prefix)
		}
	}
	// bcrypt ignores everything after 72 bytes; we refuse such passwords
	// instead of letting two of them share a hash.
	long := strings.Repeat("x", 72)
	enc, err := bcrypt.GenerateFromPassword([]byte(long), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckPassword(string(enc), long); err != nil {
		t.Errorf("72-byte password: %v", err)
	}
	if err := CheckPassword(string(enc), long+"anything"); !errors.Is(err, ErrPasswordMismatch) {
		t.Errorf("73+ byte password against a bcrypt hash = %v, want ErrPasswordMismatch", err)
	}
	costly, err := bcrypt.GenerateFromPassword([]byte(pw), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	tooCostly := string(costly[:4]) + "15" + string(costly[6:])
	if err := CheckPassword(tooCostly, pw); !errors.Is(err, ErrPasswordHash) {
		t.Errorf("bcrypt cost 15: CheckPassword = %v, want ErrPasswordHash", err)
	}
}

func TestCheckPasswordRejectsBadHashes(t *testing.T) {
	t.Parallel()
	h := newFastHasher(t)
	good, err := h.HashPassword("password1")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=..., salt, hash
	join := func(p ...string) string { return strings.Join(p, "$") }
	for _, tc := range []struct {
		name, enc string
	}{
		{"empty", ""},
		{"plaintext", "password1"},
		{"argon2i", join("", "argon2i", parts[2], parts[3], parts[4], parts[5])},
		{"argon2d", join("", "argon2d", parts[2], parts[3], parts[4], parts[5])},
		{"version 16", join("", "argon2id", "v=16", parts[3], parts[4], parts[5])},
		{"no version", join("", "argon2id", parts[3], parts[4], parts[5])},
		{"params out of order", join("", "argon2id", parts[2], "t=1,m=64,p=1", parts[4], parts[5])},
		{"leading zero", join("", "argon2id", parts[2], "m=064,t=1,p=1", parts[4], parts[5])},
		{"extra param", join("", "argon2id", parts[2], "m=64,t=1,p=1,keyid=x", parts[4], parts[5])},
		{"negative", join("", "argon2id", parts[2], "m=-64,t=1,p=1", parts[4], parts[5])},
		{"huge memory", join("", "argon2id", parts[2], "m=4194304,t=1,p=1", parts[4], parts[5])},
		{"memory over uint32", join("", "argon2id", parts[2], "m=99999999999,t=1,p=1", parts[4], parts[5])},
		{"many iterations", join("", "argon2id", parts[2], "m=64,t=1000,p=1", parts[4], parts[5])},
		{"zero parallelism", join("", "argon2id", parts[2], "m=64,t=1,p=0", parts[4], parts[5])},
		{"parallelism 256", join("", "argon2id", parts[2], "m=4096,t=1,p=256", parts[4], parts[5])},
		{"padded salt", join("", "argon2id", parts[2], parts[3], parts[4]+"==", parts[5])},
		{"url base64 salt", join("", "argon2id", parts[2], parts[3], strings.NewReplacer("+", "-", "/", "_").Replace(parts[4])+"-_", parts[5])},
		{"short salt", join("", "argon2id", parts[2], parts[3], "c2FsdA", parts[5])},
		{"short hash", join("", "argon2id", parts[2], parts[3], parts[4], "aGFzaA")},
		{"empty hash", join("", "argon2id", parts[2], parts[3], parts[4], "")},
		{"trailing field", good + "$"},
		{"leading junk", "x" + good},
		{"bcrypt garbage", "$2b$10$short"},
		{"bcrypt 2x", "$2x$04$abcdefghijklmnopqrstuuabcdefghijklmnopqrstuvwxyz01234"},
	} {
		if err := CheckPassword(tc.enc, "password1"); !errors.Is(err, ErrPasswordHash) {
			t.Errorf("%s: CheckPassword(%q) = %v, want ErrPasswordHash", tc.name, tc.enc, err)
		}
		if err := CheckPasswordHash(tc.enc); !errors.Is(err, ErrPasswordHash) {
			t.Errorf("%s: CheckPasswordHash = %v, want ErrPasswordHash", tc.name, err)
		}
		if !h.NeedsRehash(tc.enc) {
			t.Errorf("%s: NeedsRehash = false", tc.name)
		}
	}
	// A password too long to check never reaches the KDF.
	if err := CheckPassword(good, strings.Repeat("a", MaxPasswordLen+1)); !errors.Is(err, ErrPasswordMismatch) {
		t.Errorf("oversized password: %v", err)
	}
}

func TestDummyCheck(t *testing.T) {
	t.Parallel()
	h := newFastHasher(t)
	h.DummyCheck("anything") // must not panic; costs one hash
	if err := CheckPassword(h.dummy(), "openxaa dummy password for timing"); err != nil {
		t.Errorf("dummy hash is not a valid hash: %v", err)
	}
}

func FuzzCheckPassword(f *testing.F) {
	const right = "the-right-password"
	h := newFastHasher(f)
	enc, err := h.HashPassword(right)
	if err != nil {
		f.Fatal(err)
	}
	bc, err := bcrypt.GenerateFromPassword([]byte(right), bcrypt.MinCost)
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []struct{ enc, pw string }{
		{enc, right}, {enc, "wrong"}, {string(bc), right}, {string(bc), right + strings.Repeat("!", 80)},
		{"", ""}, {"$argon2id$v=19$m=64,t=1,p=1$$", right}, {"$2b$04$", right},
	} {
		f.Add(s.enc, s.pw)
	}
	f.Fuzz(func(t *testing.T, encoded, password string) {
		// Only the right password opens the known hashes.
		for _, known := range []string{enc, string(bc)} {
			if err := CheckPassword(known, password); (err == nil) != (password == right) {
				t.Fatalf("CheckPassword(known, %q) = %v", password, err)
			}
		}
		// Arbitrary hashes never panic; skip ones expensive by design.
		if p, _, _, err := parseArgon2id(encoded); err == nil && (p.MemoryKiB > 1024 || p.Iterations > 2) {
			return
		}
		if isBcrypt(encoded) {
			if c, err := bcrypt.Cost([]byte(encoded)); err == nil && c > 5 {
				return
			}
		}
		err := CheckPassword(encoded, password)
		if err != nil && !errors.Is(err, ErrPasswordMismatch) && !errors.Is(err, ErrPasswordHash) {
			t.Fatalf("unexpected error kind: %v", err)
		}
		if err == nil && CheckPasswordHash(encoded) != nil {
			t.Fatalf("a password matched %q, which CheckPasswordHash refuses", encoded)
		}
	})
}

// BenchmarkCheckPassword measures one login's password check with the
// default parameters (m=19456 KiB, t=2, p=1).
func BenchmarkCheckPassword(b *testing.B) {
	h, err := NewPasswordHasher(nil)
	if err != nil {
		b.Fatal(err)
	}
	enc, err := h.HashPassword("benchmark-password")
	if err != nil {
		b.Fatal(err)
	}
	p := h.Params()
	b.ReportAllocs()
	for b.Loop() {
		if err := CheckPassword(enc, "benchmark-password"); err != nil {
			b.Fatal(err)
		}
	}
	// After the loop: b.Loop's timer reset drops metrics reported before.
	b.ReportMetric(float64(p.MemoryKiB), "argon2-KiB")
	b.ReportMetric(float64(p.Iterations), "argon2-t")
	b.ReportMetric(float64(p.Parallelism), "argon2-p")
}
