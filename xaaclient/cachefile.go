package xaaclient

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"
)

// cacheVersion is the format of the token cache file.
const cacheVersion = 1

// session is the user's sign-in at the IdP.
type session struct {
	// LoginID identifies one interactive login; a refresh keeps it. A
	// denial is remembered for the login it happened in.
	LoginID       string    `json:"login_id"`
	Subject       string    `json:"sub"`
	IDToken       string    `json:"id_token"`
	IDTokenExpiry time.Time `json:"id_token_expires_at"`
	RefreshToken  string    `json:"refresh_token,omitempty"`
	AuthTime      time.Time `json:"auth_time,omitzero"`
	ACR           string    `json:"acr,omitempty"`
}

// storedToken is one cached access token.
type storedToken struct {
	Resource    string    `json:"resource"`
	Scopes      []string  `json:"scopes"` // as requested: part of the cache key
	Granted     []string  `json:"granted_scopes"`
	AuthServer  string    `json:"authorization_server"`
	AccessToken string    `json:"access_token"`
	ExpiresAt   time.Time `json:"expires_at"`
	Subject     string    `json:"sub"`
	LoginID     string    `json:"login_id"` // the login whose ID token bought it
}

func (t *storedToken) key() string { return tokenKey(t.Resource, t.Scopes) }

// tokenKey is the cache key: the resource and the sorted scope set.
func tokenKey(resource string, scopes []string) string {
	k := resource + "\x00"
	for _, s := range normScopes(scopes) {
		k += s + " "
	}
	return k
}

// cacheState is the whole cache: one IdP session and its access tokens,
// for one (issuer, client).
type cacheState struct {
	Version  int           `json:"version"`
	Issuer   string        `json:"issuer"`
	ClientID string        `json:"client_id"`
	Session  *session      `json:"session,omitempty"`
	Tokens   []storedToken `json:"access_tokens,omitempty"`
}

func (s *cacheState) clone() *cacheState {
	out := *s
	if s.Session != nil {
		sess := *s.Session
		out.Session = &sess
	}
	out.Tokens = slices.Clone(s.Tokens)
	return &out
}

// prune drops expired tokens and tokens of anyone but the session's user.
func (s *cacheState) prune(now time.Time) {
	s.Tokens = slices.DeleteFunc(s.Tokens, func(t storedToken) bool {
		return !now.Before(t.ExpiresAt) || s.Session == nil || t.Subject != s.Session.Subject
	})
}

// tokenFile persists a cacheState: written atomically with mode 0600,
// updated under an exclusive lock on a sibling lock file so that two
// processes (a bridge and `xaa token`, say) never rotate the same refresh
// token (which the IdP would take for theft and revoke the family), and
// refused when others could read or replace it.
type tokenFile struct {
	path             string
	issuer, clientID string

	mu sync.Mutex // serialises this process's updates

	statMu  sync.Mutex // guards what this process last read or wrote
	modTime time.Time
	size    int64
}

func (f *tokenFile) seen(modTime time.Time, size int64) {
	f.statMu.Lock()
	f.modTime, f.size = modTime, size
	f.statMu.Unlock()
}

// stale reports whether the file changed since this process last read or
// wrote it.
func (f *tokenFile) stale() bool {
	f.statMu.Lock()
	modTime, size := f.modTime, f.size
	f.statMu.Unlock()
	fi, err := os.Stat(f.path)
	if err != nil {
		return !modTime.IsZero()
	}
	return !fi.ModTime().Equal(modTime) || fi.Size() != size
}

// read returns the file's state; a missing file, or one for another
// issuer or client, is an empty state.
func (f *tokenFile) read() (*cacheState, error) {
	empty := &cacheState{Version: cacheVersion, Issuer: f.issuer, ClientID: f.clientID}
	fi, err := os.Lstat(f.path)
	if errors.Is(err, fs.ErrNotExist) {
		f.seen(time.Time{}, 0)
		return empty, nil
	}
	if err != nil {
		return nil, fmt.Errorf("xaaclient: token cache: %w", err)
	}
	if err := checkPrivate(f.path, fi); err != nil {
		return nil, err
	}
	data, err := os.ReadFile(f.path)
	if err != nil {
		return nil, fmt.Errorf("xaaclient: token cache: %w", err)
	}
	f.seen(fi.ModTime(), fi.Size())
	var st cacheState
	if err := json.Unmarshal(data, &st); err != nil || st.Version != cacheVersion {
		// A corrupt or foreign-format cache is not fatal: it is only a
		// cache, and the next write replaces it.
		return empty, nil
	}
	if st.Issuer != f.issuer || st.ClientID != f.clientID {
		return empty, nil
	}
	return &st, nil
}

// update applies fn to the file's current state under the lock and writes
// the result.
func (f *tokenFile) update(fn func(*cacheState) error) (*cacheState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	dir := filepath.Dir(f.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("xaaclient: token cache directory: %w", err)
	}
	if err := checkPrivateDir(dir); err != nil {
		return nil, err
	}
	unlock, err := lockFile(f.path + ".lock")
	if err != nil {
		return nil, fmt.Errorf("xaaclient: lock the token cache: %w", err)
	}
	defer unlock()
	st, err := f.read()
	if err != nil {
		return nil, err
	}
	if err := fn(st); err != nil {
		return nil, err
	}
	return st, f.write(st)
}

// write replaces the file atomically: a temporary file in the same
// directory, created 0600, synced, then renamed over the old one.
func (f *tokenFile) write(st *cacheState) error {
	data, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(f.path), ".tokens-*.tmp")
	if err != nil {
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	name := tmp.Name()
	defer os.Remove(name) // no-op after the rename
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	if err := os.Rename(name, f.path); err != nil {
		return fmt.Errorf("xaaclient: token cache: %w", err)
	}
	syncDir(filepath.Dir(f.path))
	if fi, err := os.Stat(f.path); err == nil {
		f.seen(fi.ModTime(), fi.Size())
	}
	return nil
}
