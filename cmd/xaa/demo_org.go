package main

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/openxaa/xaa/internal/directory"
	"github.com/openxaa/xaa/internal/keyring"
)

// demoSecrets are the demo organisation's generated secrets. They are
// created once per state directory (0600) so a restarted demo keeps its
// logins, tokens and audit trail.
type demoSecrets struct {
	AppSecret      string `json:"app_secret"`
	NotesSecret    string `json:"notes_secret"`
	GatewaySecret  string `json:"gateway_secret"`
	AlicePassword  string `json:"alice_password"`
	BobPassword    string `json:"bob_password"`
	DanaPassword   string `json:"dana_password"`
	AliceTOTP      string `json:"alice_totp"` // base32
	UpstreamSecret string `json:"upstream_secret"`
}

// demoLayout is where everything of one demo lives.
type demoLayout struct {
	dir, port                             string
	base, idp, as                         string
	filesResource, crmResource            string
	config, seed, secrets, key, client    string
	gatewaySecretFile, upstreamSecretFile string
	filesRoot, tokenCaches                string
}

func newDemoLayout(dir string, port int) demoLayout {
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	return demoLayout{
		dir: dir, port: fmt.Sprint(port), base: base,
		idp: base + "/idp", as: base + "/as",
		filesResource: base + "/mcp/files", crmResource: base + "/mcp/crm",
		config: filepath.Join(dir, "config.yaml"), seed: filepath.Join(dir, "seed.yaml"),
		secrets: filepath.Join(dir, "secrets.json"), key: filepath.Join(dir, "wrapping.key"),
		client:             filepath.Join(dir, "client.yaml"),
		gatewaySecretFile:  filepath.Join(dir, "gateway.secret"),
		upstreamSecretFile: filepath.Join(dir, "upstream.secret"),
		filesRoot:          filepath.Join(dir, "files"),
		tokenCaches:        filepath.Join(dir, "tokens"),
	}
}

func randomSecret() string { return rand.Text() + rand.Text() } // 256 bits, base32

func demoDigest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// loadOrCreateSecrets reads the state directory's secrets, creating them
// on first run.
func loadOrCreateSecrets(path string) (*demoSecrets, error) {
	s, err := readDemoSecrets(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return s, err
	}
	totp, err := directory.GenerateTOTPSecret()
	if err != nil {
		return nil, err
	}
	s = &demoSecrets{
		AppSecret: randomSecret(), NotesSecret: randomSecret(), GatewaySecret: randomSecret(),
		AlicePassword: "alice-" + rand.Text()[:12], BobPassword: "bob-" + rand.Text()[:12], DanaPassword: "dana-" + rand.Text()[:12],
		AliceTOTP: directory.EncodeTOTPSecret(totp), UpstreamSecret: randomSecret(),
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return nil, err
	}
	return s, writeFileAtomic(path, append(data, '\n'), 0o600)
}

// readDemoSecrets reads a state directory's secrets.
func readDemoSecrets(path string) (*demoSecrets, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var s demoSecrets
	if err := json.Unmarshal(data, &s); err != nil {
		return nil, fmt.Errorf("%s: %w (delete the state directory or run xaa demo --reset)", path, err)
	}
	return &s, nil
}

func writeFileAtomic(path string, data []byte, mode fs.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// writeDemoFiles writes the config, seed, client profile, secret files and
// sample files of the demo. Everything is regenerated on each start from
// the persisted secrets, so a changed port takes effect.
func writeDemoFiles(l demoLayout, s *demoSecrets, exe, filesPort string) error {
	if _, err := os.Stat(l.key); errors.Is(err, fs.ErrNotExist) {
		k, err := keyring.GenerateWrappingKey()
		if err != nil {
			return err
		}
		if err := writeFileAtomic(l.key, []byte(k+"\n"), 0o600); err != nil {
			return err
		}
	}
	for _, d := range []string{l.filesRoot, l.tokenCaches} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return err
		}
	}
	samples := map[string]string{
		"welcome.txt":     "Welcome to the OpenXAA demo. Every tool call you make here went IdP -> authorization server -> gateway.\n",
		"roadmap.md":      "# Roadmap\n\n- Q1: ship Cross App Access\n- Q2: revoke everything in seconds\n",
		"team/oncall.txt": "This week: alice (primary), bob (secondary)\n",
	}
	for name, body := range samples {
		p := filepath.Join(l.filesRoot, filepath.FromSlash(name))
		if _, err := os.Stat(p); err == nil {
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			return err
		}
	}
	files := []struct {
		path string
		data string
	}{
		{l.gatewaySecretFile, s.GatewaySecret + "\n"},
		{l.upstreamSecretFile, s.UpstreamSecret + "\n"},
		{l.seed, demoSeed(l, s)},
		{l.config, demoConfig(l, s, exe, filesPort)},
		{l.client, demoClientProfile(l, s)},
	}
	for _, f := range files {
		if err := writeFileAtomic(f.path, []byte(f.data), 0o600); err != nil {
			return err
		}
	}
	return nil
}

func demoSeed(l demoLayout, s *demoSecrets) string {
	return fmt.Sprintf(`# The OpenXAA demo organisation (generated by xaa demo; edits are overwritten).
groups:
  - name: staff
    description: Everyone at Example Corp
  - name: eng
    description: Engineering
  - name: sales
    description: Sales
users:
  - username: alice
    email: alice@example.com
    display_name: Alice (eng, TOTP enrolled)
    password: %[1]q
    totp_secret: %[2]q
    groups: [staff, eng]
  - username: bob
    email: bob@example.com
    display_name: Bob (staff)
    password: %[3]q
    groups: [staff]
  - username: dana
    email: dana@example.com
    display_name: Dana (sales)
    password: %[4]q
    groups: [staff, sales]
apps:
  - client_id: assistant
    name: Example Assistant (the xaa CLI)
    auth_method: client_secret_basic
    client_secret: %[5]q
    redirect_uris: [http://127.0.0.1/callback]
  - client_id: notes-bot
    name: Notes Bot
    auth_method: client_secret_basic
    client_secret: %[6]q
    redirect_uris: [http://127.0.0.1/notes-callback]
auth_servers:
  - issuer: %[7]q
    name: Demo resource authorization server
    client_ids:
      assistant: assistant
      notes-bot: notes-bot
resources:
  - uri: %[8]q
    name: Files
    auth_server: %[7]q
    scopes:
      - name: files:read
        description: List and read files
      - name: files:write
        description: Create, change and delete files
        sensitive: true
  - uri: %[9]q
    name: CRM
    auth_server: %[7]q
    scopes:
      - name: crm:read
        description: Search customers
      - name: crm:export
        description: Export the whole customer list
        sensitive: true
connections:
  - app: assistant
    resource: %[8]q
    groups:
      staff: [files:read]
      eng: [files:read, files:write]
    status: approved
    approver: security@example.com
    justification: The assistant helps staff find and edit shared documents.
  - app: assistant
    resource: %[9]q
    groups:
      sales: [crm:read]
      eng: [crm:read, crm:export]
    step_up:
      crm:export:
        acr: urn:openxaa:acr:mfa
        max_age: 5m
    status: approved
    approver: security@example.com
    justification: Sales and engineering look up customers; exports need a fresh MFA login.
  - app: notes-bot
    resource: %[8]q
    groups:
      staff: [files:read]
    status: pending
    justification: Notes Bot wants to summarise shared documents (awaiting approval).
`, s.AlicePassword, s.AliceTOTP, s.BobPassword, s.DanaPassword, s.AppSecret, s.NotesSecret,
		l.as, l.filesResource, l.crmResource)
}

func demoConfig(l demoLayout, s *demoSecrets, exe, filesPort string) string {
	return fmt.Sprintf(`# OpenXAA demo deployment (generated by xaa demo; edits are overwritten).
database:
  url: "sqlite:%[1]s"
keys:
  wrapping_key_file: %[2]q
log:
  level: warn
  format: text
listen:
  addr: "127.0.0.1:%[3]s"
  admin_addr: "127.0.0.1:0"
issuers:
  idp: %[4]q
  authserver: %[5]q
dev_mode: true
seed_file: %[6]q
idp:
  # Users enrolled in TOTP give their code only when a request needs MFA,
  # so the demo shows a real step-up.
  mfa: on_demand
authserver:
  trusted_issuers:
    - issuer: %[4]q
      jwks_uri: "%[4]s/jwks.json"
  resources:
    - uri: %[7]q
      scopes: [files:read, files:write]
      tools:
        list_files: {scopes: [files:read]}
        read_file: {scopes: [files:read]}
        write_file: {scopes: [files:write]}
        delete_file: {scopes: [files:write]}
    - uri: %[8]q
      scopes: [crm:read, crm:export]
      tools:
        search_customers: {scopes: [crm:read]}
        export_customers: {scopes: [crm:export], acr_values: [urn:openxaa:acr:mfa], max_age: 5m}
  clients:
    - client_id: assistant
      auth_method: client_secret_basic
      client_secret_sha256: %[9]q
      resources: [%[7]q, %[8]q]
    - client_id: notes-bot
      auth_method: client_secret_basic
      client_secret_sha256: %[10]q
      resources: [%[7]q]
    - client_id: gateway
      auth_method: client_secret_basic
      client_secret_sha256: %[11]q
      resources: [%[7]q, %[8]q]
gateway:
  routes:
    - path: /mcp/files
      resource: %[7]q
      authserver:
        issuer: %[5]q
        client_id: gateway
        client_secret_file: %[12]q
      revocation_poll_interval: 2s
      upstream:
        url: "http://127.0.0.1:%[13]s/mcp"
        credential:
          header: Authorization
          value_file: %[14]q
          prefix: "Bearer "
    - path: /mcp/crm
      resource: %[8]q
      authserver:
        issuer: %[5]q
        client_id: gateway
        client_secret_file: %[12]q
      revocation_poll_interval: 2s
      upstream:
        command: [%[15]q, demo, mcp-server, crm]
`, filepath.ToSlash(filepath.Join(l.dir, "xaa.db")), l.key, l.port, l.idp, l.as, l.seed,
		l.filesResource, l.crmResource, demoDigest(s.AppSecret), demoDigest(s.NotesSecret), demoDigest(s.GatewaySecret),
		l.gatewaySecretFile, filesPort, l.upstreamSecretFile, exe)
}

func demoClientProfile(l demoLayout, s *demoSecrets) string {
	return fmt.Sprintf(`# The xaa CLI's identity as the demo's requesting app "assistant".
# Use it with: xaa --profile %[1]s login | tools | call | token | bridge
issuer: %[2]q
client_id: assistant
client_secret: %[3]q
redirect_uri: http://127.0.0.1/callback
cache_file: %[4]q
auth_servers:
  - issuer: %[5]q
    client_id: assistant
    client_secret: %[3]q
`, l.client, l.idp, s.AppSecret, filepath.Join(l.tokenCaches, "cli.json"), l.as)
}
