package audit

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

func testKey(t testing.TB) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func pubOf(k ed25519.PrivateKey) ed25519.PublicKey { return k.Public().(ed25519.PublicKey) }

var testTime = time.Date(2026, 5, 4, 3, 2, 1, 0, time.UTC)

// TestCheckpointSignedMessageGolden pins the signed encoding (computed
// independently in Python).
func TestCheckpointSignedMessageGolden(t *testing.T) {
	t.Parallel()
	c := Checkpoint{Stream: "idp", Seq: 7, Hash: strings.Repeat("ab", 32), Time: testTime}
	sum := sha256.Sum256(c.SignedMessage())
	if got := hex.EncodeToString(sum[:]); got != "ce28631f4c4aa7e16c7525335befc04847397d5f126e8de002e40b68715f61f5" {
		t.Errorf("SHA-256(SignedMessage) = %s", got)
	}
}

func TestCheckpointSignVerify(t *testing.T) {
	t.Parallel()
	key, other := testKey(t), testKey(t)
	h := store.AuditHead{Stream: "idp", Seq: 42, Hash: strings.Repeat("c", 64)}
	c := SignCheckpoint(key, h, testTime.Add(123456*time.Microsecond))
	if c.Time != testTime.Add(123*time.Millisecond) || c.KeyID != KeyID(pubOf(key)) || len(c.KeyID) != 16 {
		t.Fatalf("SignCheckpoint = %+v", c)
	}
	if err := c.Verify(pubOf(key)); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	line, err := MarshalCheckpoint(c)
	if err != nil {
		t.Fatal(err)
	}
	back, err := ParseCheckpoint(line)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(c, back); diff != "" {
		t.Errorf("round trip (-want +got):\n%s", diff)
	}
	for _, tc := range []struct {
		name   string
		change func(c *Checkpoint)
	}{
		{"stream", func(c *Checkpoint) { c.Stream = "idq" }},
		{"seq", func(c *Checkpoint) { c.Seq-- }},
		{"hash", func(c *Checkpoint) { c.Hash = strings.Repeat("d", 64) }},
		{"time", func(c *Checkpoint) { c.Time = c.Time.Add(time.Millisecond) }},
		{"sig", func(c *Checkpoint) { c.Sig = append([]byte{c.Sig[0] ^ 1}, c.Sig[1:]...) }},
	} {
		bad := c
		tc.change(&bad)
		if err := bad.Verify(pubOf(key)); !errors.Is(err, ErrBadSignature) {
			t.Errorf("changed %s: Verify = %v, want ErrBadSignature", tc.name, err)
		}
	}
	if err := c.Verify(pubOf(other)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("other key: Verify = %v", err)
	}
}

func TestParseCheckpointRejects(t *testing.T) {
	t.Parallel()
	c := SignCheckpoint(testKey(t), store.AuditHead{Stream: "idp", Seq: 1, Hash: GenesisHash}, testTime)
	b, _ := MarshalCheckpoint(c)
	good := strings.TrimSpace(string(b))
	for _, tc := range []struct{ name, line string }{
		{"v2", strings.Replace(good, `"v":1`, `"v":2`, 1)},
		{"seq 0", strings.Replace(good, `"seq":1`, `"seq":0`, 1)},
		{"bad stream", strings.Replace(good, `"stream":"idp"`, `"stream":"Bad Stream"`, 1)},
		{"short sig", strings.Replace(good, `"sig":"`, `"sig":"AA`, 1)},
		{"padded sig", strings.Replace(good, `"}`, `=="}`, 1)},
		{"unknown member", strings.Replace(good, `"v":1`, `"v":1,"x":1`, 1)},
		{"duplicate", strings.Replace(good, `"v":1`, `"v":1,"v":1`, 1)},
		{"missing sig", good[:strings.Index(good, `,"sig"`)] + `}`},
	} {
		if _, err := ParseCheckpoint([]byte(tc.line)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err = %v, want ErrMalformed", tc.name, err)
		}
	}
}

func TestReadCheckpoints(t *testing.T) {
	t.Parallel()
	k1, k2, stranger := testKey(t), testKey(t), testKey(t)
	line := func(k ed25519.PrivateKey, seq int64) string {
		b, _ := MarshalCheckpoint(SignCheckpoint(k, store.AuditHead{Stream: "idp", Seq: seq, Hash: GenesisHash}, testTime))
		return string(b)
	}
	good := line(k1, 1) + "\n" + line(k2, 2)
	cps, err := ReadCheckpoints(strings.NewReader(good), "cp.jsonl", []ed25519.PublicKey{pubOf(k1), pubOf(k2)})
	if err != nil || len(cps) != 2 || cps[1].Seq != 2 {
		t.Fatalf("ReadCheckpoints = %+v, %v", cps, err)
	}
	forged := strings.Replace(line(k1, 3), `"seq":3`, `"seq":4`, 1)
	for _, tc := range []struct{ name, content, want string }{
		{"unknown key", line(stranger, 1), "cp.jsonl:1: checkpoint signed by key"},
		{"forged seq", good + forged, "cp.jsonl:4: stream idp seq 4: audit: checkpoint signature does not verify"},
		{"garbage", line(k1, 1) + "not json\n", "cp.jsonl:2: audit: malformed line"},
	} {
		_, err := ReadCheckpoints(strings.NewReader(tc.content), "cp.jsonl", []ed25519.PublicKey{pubOf(k1), pubOf(k2)})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// From syslog: only tagged lines count, from their first brace.
	sys := "Nov 25 20:40:38 host sshd[1]: {\"v\":9}\n" +
		"Nov 25 20:40:38 host xaa-audit[77]: " + line(k1, 5) +
		"<38>1 2026-11-25T20:40:38Z host xaa-audit 77 - - " + line(k1, 6)
	cps, err = ReadSyslogCheckpoints(strings.NewReader(sys), "syslog", []ed25519.PublicKey{pubOf(k1)})
	if err != nil || len(cps) != 1 || cps[0].Seq != 5 {
		t.Errorf("ReadSyslogCheckpoints = %+v, %v; want seq 5 only (the RFC 5424 line has no colon after the tag)", cps, err)
	}
}

func TestCheckpointKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	privPEM, pubPEM, err := GenerateCheckpointKey()
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keyPath := write("cp.key", privPEM, 0o600)
	pubPath := write("cp.pub", pubPEM, 0o644)
	priv, err := LoadPrivateKey(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := LoadPublicKey(pubPath)
	if err != nil {
		t.Fatal(err)
	}
	c := SignCheckpoint(priv, store.AuditHead{Stream: "idp", Seq: 1, Hash: GenesisHash}, testTime)
	if err := c.Verify(pub); err != nil {
		t.Errorf("a key pair from GenerateCheckpointKey does not verify: %v", err)
	}
	link := filepath.Join(dir, "link.key")
	if err := os.Symlink(keyPath, link); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPrivateKey(link); err != nil {
		t.Errorf("symlink to a 0600 key: %v", err)
	}
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	for _, tc := range []struct {
		name string
		path string
		want error
	}{
		{"group readable", write("g.key", privPEM, 0o640), ErrInsecureKeyFile},
		{"world readable", write("w.key", privPEM, 0o604), ErrInsecureKeyFile},
		{"directory", dir, ErrInsecureKeyFile},
		{"public key as private", write("p.key", pubPEM, 0o600), ErrInvalidKey},
		{"ECDSA key", write("ec.key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER}), 0o600), ErrInvalidKey},
		{"two blocks", write("two.key", append(append([]byte{}, privPEM...), privPEM...), 0o600), ErrInvalidKey},
		{"garbage", write("x.key", []byte("not a key"), 0o600), ErrInvalidKey},
	} {
		if _, err := LoadPrivateKey(tc.path); !errors.Is(err, tc.want) {
			t.Errorf("%s: LoadPrivateKey = %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := LoadPublicKey(keyPath); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("private key as public: %v", err)
	}
}

// FuzzCheckpointLine: the checkpoint parser never panics, and a line that
// parses re-encodes to a canonical line that parses to the same
// checkpoint; its signature verifies only under the key that made it.
func FuzzCheckpointLine(f *testing.F) {
	key := testKey(f)
	good, _ := MarshalCheckpoint(SignCheckpoint(key, store.AuditHead{Stream: "idp", Seq: 3, Hash: GenesisHash}, testTime))
	f.Add(good)
	f.Add([]byte(`{"v":1,"stream":"a","seq":1,"hash":"","time_ms":0,"key_id":"","sig":""}`))
	f.Add([]byte(`{"v":1,"v":1}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		c, err := ParseCheckpoint(line)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v is not ErrMalformed", err)
			}
			return
		}
		canon, err := MarshalCheckpoint(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, err := ParseCheckpoint(canon)
		if err != nil {
			t.Fatalf("canonical line does not parse: %v", err)
		}
		if diff := cmp.Diff(c, c2); diff != "" {
			t.Fatalf("re-parse differs (-first +second):\n%s", diff)
		}
		if err := c.Verify(pubOf(key)); err == nil && !bytes.Equal(canon, good) {
			t.Fatalf("a checkpoint the key did not sign verifies: %s", canon)
		}
	})
}
