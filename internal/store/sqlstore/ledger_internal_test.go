package sqlstore

import (
	"crypto/sha256"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/openxaa/xaa/internal/store"
)

// TestMigrateLedgerKeepsConnections: schema 0010 rebuilds connections (on
// SQLite) to admit the denied and expired statuses; every row written
// under the old schema survives unchanged, and afterwards a denied
// request no longer blocks a new one while a live connection still does.
func TestMigrateLedgerKeepsConnections(t *testing.T) {
	t.Parallel()
	for _, b := range backends() {
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			ctx := t.Context()
			db := mustOpen(t, b.url(t))
			migrateTo(t, db, 9)
			now := time.Now().UTC().Truncate(time.Millisecond)
			d := sha256.Sum256([]byte("s"))
			must := func(err error) {
				t.Helper()
				if err != nil {
					t.Fatal(err)
				}
			}
			must(db.CreateClient(ctx, store.Client{ID: "app", Realm: store.RealmIdP, AuthMethod: "client_secret_basic", SecretDigest: d[:], CreatedAt: now}))
			must(db.CreateAuthServer(ctx, store.AuthServer{Issuer: "https://as.example.com", Name: "AS", CreatedAt: now, UpdatedAt: now}))
			for _, uri := range []string{"https://a.example.com/mcp", "https://b.example.com/mcp"} {
				must(db.CreateResource(ctx, store.Resource{URI: uri, Name: "R", AuthServerIssuer: "https://as.example.com",
					Scopes: []store.ResourceScope{{Name: "read"}}, CreatedAt: now, UpdatedAt: now}))
			}
			// Rows as the old schema holds them, written with its columns.
			old := []store.Connection{
				{ID: "c_live", AppID: "app", ResourceURI: "https://a.example.com/mcp", Status: store.ConnectionApproved, Approver: "carol",
					GroupScopes: []store.GroupScopes{{Group: "staff", Scopes: []string{"read"}}}, StepUp: []store.StepUpRule{{Scope: "read", ACR: "mfa", MaxAge: time.Minute}},
					IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 600 * time.Second, IncludeEmail: true, Justification: "docs",
					CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour)},
				{ID: "c_gone", AppID: "app", ResourceURI: "https://b.example.com/mcp", Status: store.ConnectionRevoked,
					GroupScopes:   []store.GroupScopes{{Group: "staff", Scopes: []string{"read"}}},
					IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second,
					CreatedAt: now, UpdatedAt: now, RevokedAt: now},
			}
			for _, c := range old {
				rest, err := connectionArgs(c)
				must(err)
				args := append([]any{c.ID, c.AppID, c.ResourceURI}, rest[:8]...)
				args = append(args, ms(c.CreatedAt), ms(c.UpdatedAt), msOrNull(c.ExpiresAt), msOrNull(c.RevokedAt))
				_, err = db.write.ExecContext(ctx, `INSERT INTO connections (app_realm, id, app_id, resource_uri, group_scopes, step_up,
    id_jag_lifetime_ms, access_token_lifetime_ms, include_email, status, approver, justification,
    created_at, updated_at, expires_at, revoked_at)
VALUES ('idp', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`, args...)
				must(err)
			}
			if _, err := db.Migrate(ctx); err != nil {
				t.Fatal(err)
			}
			for _, want := range old {
				got, err := db.GetConnection(ctx, want.ID)
				must(err)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("%s changed by the migration (-before +after):\n%s", want.ID, diff)
				}
			}
			// The new statuses and columns work; the one-live rule now
			// treats denied like revoked.
			denied := store.Connection{ID: "c_denied", AppID: "app", ResourceURI: "https://b.example.com/mcp", Status: store.ConnectionDenied,
				IDJAGLifetime: 300 * time.Second, AccessTokenLifetime: 300 * time.Second, Requester: "human:dana", StatusReason: "no",
				CreatedAt: now, UpdatedAt: now}
			must(db.CreateConnection(ctx, denied))
			next := denied
			next.ID, next.Status, next.StatusReason = "c_next", store.ConnectionPending, ""
			must(db.CreateConnection(ctx, next))
			again := next
			again.ID = "c_again"
			if err := db.CreateConnection(ctx, again); !errors.Is(err, store.ErrConflict) {
				t.Errorf("a second live connection: %v, want ErrConflict", err)
			}
			got, err := db.GetConnection(ctx, "c_denied")
			if err != nil || got.Requester != "human:dana" || got.Status != store.ConnectionDenied {
				t.Errorf("denied row %+v, %v", got, err)
			}
		})
	}
}
