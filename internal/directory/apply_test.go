package directory

import (
	"bytes"
	"errors"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/keyring"
	"github.com/openxaa/xaa/internal/oauth"
	"github.com/openxaa/xaa/internal/store"
	"github.com/openxaa/xaa/internal/store/sqlstore"
	"github.com/openxaa/xaa/internal/store/storetest"
)

// testStore is everything the tests read back.
type testStore interface {
	SeedStore
	store.Tx
}

type backend struct {
	name string
	open func(t *testing.T) testStore
}

func openDB(t *testing.T, url string) testStore {
	t.Helper()
	db, err := sqlstore.Open(t.Context(), url, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	if _, err := db.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	return db
}

func backends() []backend {
	return []backend{
		{"sqlite", func(t *testing.T) testStore { return openDB(t, "sqlite:"+filepath.Join(t.TempDir(), "xaa.db")) }},
		{"postgres", func(t *testing.T) testStore { return openDB(t, storetest.PostgresURL(t)) }},
	}
}

func testBox(t testing.TB) *keyring.SecretBox {
	t.Helper()
	b, err := keyring.NewSecretBox(bytes.Repeat([]byte{3}, keyring.WrappingKeySize), TOTPSealPurpose)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// clock is a settable time source.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func applyText(t *testing.T, st SeedStore, c *clock, doc string) (Summary, error) {
	t.Helper()
	s, err := ParseSeed("seed.yaml", []byte(doc))
	if err != nil {
		t.Fatalf("ParseSeed: %v", err)
	}
	return Apply(t.Context(), st, s, &ApplyOptions{Hasher: newFastHasher(t), TOTPBox: testBox(t), Now: c.now, Actor: "test"})
}

func mustApply(t *testing.T, st SeedStore, c *clock, doc string) Summary {
	t.Helper()
	sum, err := applyText(t, st, c, doc)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	return sum
}

func auditCount(t *testing.T, st store.Audit) int {
	t.Helper()
	evs, err := st.ListAudit(t.Context(), store.AuditFilter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	return len(evs)
}

func TestApplyExampleAndReapply(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			st := b.open(t)
			c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			seed, err := LoadSeed("../../examples/seed.yaml")
			if err != nil {
				t.Fatal(err)
			}
			opts := &ApplyOptions{Hasher: newFastHasher(t), TOTPBox: testBox(t), Now: c.now}
			sum, err := Apply(t.Context(), st, seed, opts)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			want := Summary{Groups: Counts{Created: 2}, Apps: Counts{Created: 1}, Users: Counts{Created: 3},
				AuthServers: Counts{Created: 1}, Resources: Counts{Created: 1}, Connections: Counts{Created: 1}}
			if diff := cmp.Diff(want, sum); diff != "" {
				t.Errorf("first apply (-want +got):\n%s", diff)
			}
			events := auditCount(t, st)
			if events != 9 {
				t.Errorf("first apply wrote %d audit events, want one per row (9)", events)
			}

			alice, err := st.GetUserByUsername(t.Context(), "ALICE")
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(alice.ID, "u_") || alice.Email != "alice@example.com" || alice.Disabled {
				t.Errorf("alice = %+v", alice)
			}
			if err := CheckPassword(alice.PasswordHash, "alice-demo-password"); err != nil {
				t.Errorf("alice's password: %v", err)
			}
			secret, err := OpenTOTPSecret(testBox(t), alice)
			if err != nil {
				t.Fatal(err)
			}
			if want, _ := ParseTOTPSecret("GJTWN6SFJYRGZO7QVF56FIIUCPFO536Z"); !bytes.Equal(secret, want) {
				t.Error("alice's TOTP secret does not round-trip")
			}
			if groups, _ := st.UserGroups(t.Context(), alice.ID); !slices.Equal(groups, []string{"eng", "staff"}) {
				t.Errorf("alice's groups = %v", groups)
			}
			bob, _ := st.GetUserByUsername(t.Context(), "bob")
			if err := CheckPassword(bob.PasswordHash, "bob-demo-password"); err != nil || bob.TOTPSealed != nil {
				t.Errorf("bob: password %v, TOTP %v", err, bob.TOTPSealed)
			}
			if carol, _ := st.GetUserByUsername(t.Context(), "carol"); !carol.Disabled {
				t.Error("carol is not disabled")
			}
			app, err := st.GetClient(t.Context(), store.RealmIdP, "assistant")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(app.SecretDigest, oauth.HashSecret("9K9FGn-jeofmKmG76ewspzls2novqfNOOBXjdzWRIqk")) {
				t.Error("the app's secret digest is not what oauth.HashSecret computes")
			}
			if id, err := st.AppClientID(t.Context(), "http://127.0.0.1:8443/as", "assistant"); err != nil || id != "assistant-at-files" {
				t.Errorf("AppClientID = %q, %v", id, err)
			}
			conn, err := st.FindConnection(t.Context(), "assistant", "http://127.0.0.1:8443/mcp/files")
			if err != nil {
				t.Fatal(err)
			}
			wantConn := store.Connection{
				ID: conn.ID, AppID: "assistant", ResourceURI: "http://127.0.0.1:8443/mcp/files",
				GroupScopes:   []store.GroupScopes{{Group: "eng", Scopes: []string{"files:read", "files:write"}}, {Group: "staff", Scopes: []string{"files:read"}}},
				StepUp:        []store.StepUpRule{{Scope: "files:write", ACR: "urn:openxaa:acr:mfa", MaxAge: 10 * time.Minute}},
				IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second,
				Status: store.ConnectionApproved, Approver: "security@example.com",
				Justification: "Assistant helps staff find and edit shared documents.",
				CreatedAt:     c.t, UpdatedAt: c.t, ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC),
			}
			if diff := cmp.Diff(wantConn, conn); diff != "" {
				t.Errorf("connection (-want +got):\n%s", diff)
			}

			// Re-applying changes nothing, not even the audit trail.
			c.t = c.t.Add(time.Hour)
			sum, err = Apply(t.Context(), st, seed, opts)
			if err != nil {
				t.Fatalf("re-apply: %v", err)
			}
			want = Summary{Groups: Counts{Unchanged: 2}, Apps: Counts{Unchanged: 1}, Users: Counts{Unchanged: 3},
				AuthServers: Counts{Unchanged: 1}, Resources: Counts{Unchanged: 1}, Connections: Counts{Unchanged: 1}}
			if diff := cmp.Diff(want, sum); diff != "" || sum.Changed() {
				t.Errorf("re-apply (-want +got):\n%s", diff)
			}
			if n := auditCount(t, st); n != events {
				t.Errorf("re-apply wrote %d audit events", n-events)
			}
			again, _ := st.GetUserByUsername(t.Context(), "alice")
			if diff := cmp.Diff(alice, again); diff != "" {
				t.Errorf("re-apply touched alice (-before +after):\n%s", diff)
			}
		})
	}
}

func TestApplyUpdates(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			st := b.open(t)
			c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			mustApply(t, st, c, baseSeed)
			before, _ := st.GetUserByUsername(t.Context(), "alice")
			conn, _ := st.FindConnection(t.Context(), "assistant", "https://files.example.com/mcp")

			// Edit almost everything: the resource drops files:write and
			// gains files:share while the connection stops granting it, in
			// the same file.
			changed := strings.NewReplacer(
				"email: alice@example.com", "email: alice@new.example.com\n    disabled: true",
				"password: alice-password", "password: alice-new-password",
				"totp_secret: GJTWN6SFJYRGZO7QVF56FIIUCPFO536Z", "totp_secret: JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP",
				"    groups: [staff, eng]", "    groups: [eng]",
				"  - name: eng\n", "  - name: eng\n    description: Engineering\n",
				"redirect_uris: [http://127.0.0.1:8976/callback]", "redirect_uris: [https://assistant.example.com/cb]",
				"      assistant: assistant-there", "      assistant: assistant-renamed",
				"      - name: files:write\n        sensitive: true", "      - name: files:share",
				"      eng: [files:read, files:write]", "      eng: [files:read, files:share]",
				"      files:write: {acr: \"urn:openxaa:acr:mfa\", max_age: 10m}", "      files:share: {max_age: 5m}",
				"    status: approved", "    status: suspended\n    access_token_lifetime: 900s",
			).Replace(baseSeed)
			c.t = c.t.Add(time.Hour)
			sum := mustApply(t, st, c, changed)
			want := Summary{Groups: Counts{Updated: 1, Unchanged: 1}, Apps: Counts{Updated: 1}, Users: Counts{Updated: 1, Unchanged: 1},
				AuthServers: Counts{Updated: 1}, Resources: Counts{Updated: 1}, Connections: Counts{Updated: 1}}
			if diff := cmp.Diff(want, sum); diff != "" {
				t.Errorf("update (-want +got):\n%s", diff)
			}
			alice, _ := st.GetUserByUsername(t.Context(), "alice")
			if alice.ID != before.ID || alice.Email != "alice@new.example.com" || !alice.Disabled || !alice.UpdatedAt.Equal(c.t) {
				t.Errorf("alice after update = %+v", alice)
			}
			if CheckPassword(alice.PasswordHash, "alice-new-password") != nil {
				t.Error("alice's password was not changed")
			}
			if s, _ := OpenTOTPSecret(testBox(t), alice); !bytes.Equal(s, []byte("Hello!\xde\xad\xbe\xefHello!\xde\xad\xbe\xef")) {
				t.Errorf("alice's TOTP secret = %x", s)
			}
			if groups, _ := st.UserGroups(t.Context(), alice.ID); !slices.Equal(groups, []string{"eng"}) {
				t.Errorf("alice's groups = %v", groups)
			}
			r, _ := st.GetResource(t.Context(), "https://files.example.com/mcp")
			if diff := cmp.Diff([]store.ResourceScope{{Name: "files:read"}, {Name: "files:share"}}, r.Scopes); diff != "" {
				t.Errorf("resource scopes (-want +got):\n%s", diff)
			}
			after, _ := st.GetConnection(t.Context(), conn.ID)
			if after.Status != store.ConnectionSuspended || after.AccessTokenLifetime != 900*time.Second ||
				!slices.Equal(after.Scopes(), []string{"files:read", "files:share"}) || len(after.StepUp) != 1 || after.StepUp[0].Scope != "files:share" {
				t.Errorf("connection after update = %+v", after)
			}
			evs, _ := st.ListAudit(t.Context(), store.AuditFilter{Subject: alice.ID})
			last := evs[len(evs)-1]
			if last.Type != EventDirectoryUpdated || last.Data["changed"] != "email,disabled,password,totp_secret,groups" {
				t.Errorf("alice's update event = %+v", last)
			}
			for _, ev := range evs {
				if strings.Contains(ev.Reason+strings.Join(slices.Collect(maps.Values(ev.Data)), " "), "alice-new-password") {
					t.Error("an audit event holds the password")
				}
			}

			// The changed file is now the fixed point.
			c.t = c.t.Add(time.Hour)
			if sum := mustApply(t, st, c, changed); sum.Changed() {
				t.Errorf("re-applying the changed file changed %+v", sum)
			}

			// Revoking is final: the seed never brings an ended connection
			// back (a serve with seed_file would otherwise undo a ledger
			// revocation at every restart); a new one goes through the
			// ledger.
			revoked := strings.Replace(changed, "status: suspended", "status: revoked", 1)
			mustApply(t, st, c, revoked)
			if _, err := st.FindConnection(t.Context(), "assistant", "https://files.example.com/mcp"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("revoked connection is still live: %v", err)
			}
			if sum := mustApply(t, st, c, revoked); sum.Changed() {
				t.Errorf("re-applying a revocation changed %+v", sum)
			}
			sum = mustApply(t, st, c, changed)
			if sum.Changed() {
				t.Errorf("re-approving after revocation changed %+v", sum.Connections)
			}
			all, _ := st.ListConnections(t.Context(), store.ConnectionFilter{AppID: "assistant", IncludeRevoked: true})
			if len(all) != 1 || all[0].Status != store.ConnectionRevoked {
				t.Errorf("connections after revoke and re-approve: %+v", all)
			}
		})
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			st := b.open(t)
			c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
			mustApply(t, st, c, baseSeed)
			// A connection outside the file still grants files:write, so
			// the file's removal of that scope fails at the very end, after
			// a new user, group, app and connection were written.
			other := `groups: [{name: staff}]
apps:
  - {client_id: other, name: Other, auth_method: client_secret_post, client_secret: abcdefghijklmnopqrstuvwxyz0123456789}
auth_servers:
  - {issuer: https://as.example.com, name: AS, client_ids: {other: other-there}}
resources:
  - {uri: https://files.example.com/mcp, name: Files, auth_server: https://as.example.com, scopes: [{name: files:read}, {name: files:write}]}
connections:
  - {app: other, resource: https://files.example.com/mcp, groups: {staff: [files:write]}, status: approved, approver: x}
`
			mustApply(t, st, c, other)
			events := auditCount(t, st)
			broken := strings.NewReplacer(
				"  - name: eng\n", "  - name: eng\n  - name: sales\n",
				"  - username: bob\n", "  - username: dave\n    groups: [sales]\n  - username: bob\n",
				"      - name: files:write\n        sensitive: true\n", "",
				"      eng: [files:read, files:write]", "      eng: [files:read]",
				"      files:write: {acr: \"urn:openxaa:acr:mfa\", max_age: 10m}\n", "",
				"    step_up:\n", "",
			).Replace(baseSeed)
			_, err := applyText(t, st, c, broken)
			if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "files:write") {
				t.Fatalf("Apply = %v, want ErrConflict about files:write", err)
			}
			if _, err := st.GetUserByUsername(t.Context(), "dave"); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("dave exists after a failed apply: %v", err)
			}
			gs, _ := st.ListGroups(t.Context())
			if slices.ContainsFunc(gs, func(g store.Group) bool { return g.Name == "sales" }) {
				t.Error("group sales exists after a failed apply")
			}
			conn, _ := st.FindConnection(t.Context(), "assistant", "https://files.example.com/mcp")
			if !slices.Contains(conn.Scopes(), "files:write") {
				t.Error("the connection changed although the apply failed")
			}
			if n := auditCount(t, st); n != events {
				t.Errorf("a failed apply left %d audit events", n-events)
			}
		})
	}
}

func TestApplyNeedsTOTPBox(t *testing.T) {
	t.Parallel()
	st := backends()[0].open(t)
	s, err := ParseSeed("seed.yaml", []byte(baseSeed))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Apply(t.Context(), st, s, &ApplyOptions{Hasher: newFastHasher(t)})
	if err == nil || !strings.Contains(err.Error(), "totp_secret") {
		t.Fatalf("Apply without a TOTP box = %v", err)
	}
	if _, err := st.GetUserByUsername(t.Context(), "bob"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("Apply wrote before refusing: %v", err)
	}
}

func TestApplyKeepsCredentialsTheFileOmits(t *testing.T) {
	t.Parallel()
	st := backends()[0].open(t)
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	mustApply(t, st, c, baseSeed)
	before, _ := st.GetUserByUsername(t.Context(), "alice")
	omitted := strings.NewReplacer("    password: alice-password\n", "", "    totp_secret: GJTWN6SFJYRGZO7QVF56FIIUCPFO536Z\n", "").Replace(baseSeed)
	if sum := mustApply(t, st, c, omitted); sum.Changed() {
		t.Errorf("omitting credentials changed %+v", sum)
	}
	after, _ := st.GetUserByUsername(t.Context(), "alice")
	if after.PasswordHash != before.PasswordHash || !bytes.Equal(after.TOTPSealed, before.TOTPSealed) {
		t.Error("omitting credentials in the file removed them")
	}
}

func TestApplyRehashesOutdatedPasswords(t *testing.T) {
	t.Parallel()
	st := backends()[0].open(t)
	c := &clock{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	mustApply(t, st, c, baseSeed)
	s, _ := ParseSeed("seed.yaml", []byte(baseSeed))
	stronger, err := NewPasswordHasher(&Argon2Params{MemoryKiB: 128, Iterations: 1, Parallelism: 1, SaltLen: 16, KeyLen: 32})
	if err != nil {
		t.Fatal(err)
	}
	sum, err := Apply(t.Context(), st, s, &ApplyOptions{Hasher: stronger, TOTPBox: testBox(t), Now: c.now})
	if err != nil || sum.Users.Updated != 1 {
		t.Fatalf("Apply with new parameters = %+v, %v; want alice's hash upgraded", sum.Users, err)
	}
	alice, _ := st.GetUserByUsername(t.Context(), "alice")
	if stronger.NeedsRehash(alice.PasswordHash) || CheckPassword(alice.PasswordHash, "alice-password") != nil {
		t.Errorf("alice's hash %q was not upgraded", alice.PasswordHash)
	}
}
