package config_test

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/openxaa/xaa/internal/config"
)

func ExampleLoad() {
	dir, err := os.MkdirTemp("", "xaa-config")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "config.yaml")
	const file = `
database:
  url: "sqlite:/var/lib/xaa/xaa.db"
keys:
  wrapping_key_file: /etc/xaa/wrapping.key
`
	if err := os.WriteFile(path, []byte(file), 0o600); err != nil {
		panic(err)
	}
	environ := map[string]string{config.EnvLogLevel: "debug"}

	cfg, err := config.Load(path, func(k string) string { return environ[k] })
	if err != nil {
		fmt.Println(err)
		return
	}
	if err := cfg.Validate(); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(cfg.Database.URL, cfg.Log.Level, cfg.Keys.MaxTokenLifetime)
	// Output: sqlite:/var/lib/xaa/xaa.db debug 1h0m0s
}

func ExampleConfig_Validate() {
	cfg := config.Default()
	cfg.Database.URL = "postgres://xaa:hunter2@db.example.com/xaa"
	cfg.Keys.Algorithm = "RS256"
	cfg.Issuers.IdP = "https://login.example.com"
	cfg.Issuers.AuthServer = "https://login.example.com/"

	fmt.Println(cfg.Validate())
	fmt.Println(cfg.Database.URL)
	// Output:
	// keys.wrapping_key_file: no wrapping key is configured; generate one with `xaa keys init` and set keys.wrapping_key_file (or XAA_KEYS_WRAPPING_KEY_FILE) to the file it writes
	// keys.algorithm: must be ES256 or EdDSA, got "RS256"
	// issuers.authserver: must differ from issuers.idp: the IdP and the authorization server are separate trust domains (cross-domain rule), even when one process runs both; give each its own host or path
	// postgres://xaa:xxxxx@db.example.com/xaa
}
