package config

import (
	"time"

	"github.com/openxaa/xaa/internal/audit"
)

// Audit configures the signed checkpoints of the audit trail. The trail
// itself lives in the database, one hash chain per stream; a checkpoint
// signs each stream's head with a key that is not in the database and is
// written outside it, so that `xaa audit verify` can show a truncated or
// rewritten chain. Leave the section empty to write no checkpoints.
type Audit struct {
	// CheckpointKeyFile is the Ed25519 private key (PKCS #8 PEM, from `xaa
	// audit keygen`) that signs checkpoints. Like the wrapping key it must
	// be mode 0600 or 0400 and owned by the service user; keep it out of
	// the database and its backups.
	CheckpointKeyFile string `yaml:"checkpoint_key_file"`
	// CheckpointDir receives checkpoints-YYYY-MM-DD.jsonl files (JSON
	// lines, appended and fsynced). Mount it from outside the database
	// host if you can: a checkpoint an attacker can delete protects less.
	CheckpointDir string `yaml:"checkpoint_dir"`
	// CheckpointSyslog also sends each checkpoint to syslog: "local" (the
	// local daemon), "udp://host:514" or "tcp://host:601". Empty: off.
	CheckpointSyslog string `yaml:"checkpoint_syslog"`
	// CheckpointInterval is how often the heads that changed are signed
	// (and once more at shutdown); 0 means 30s, from 1s to 1h.
	CheckpointInterval Duration `yaml:"checkpoint_interval"`
}

// Checkpoints reports whether checkpoints are configured.
func (a *Audit) Checkpoints() bool { return a.CheckpointKeyFile != "" }

// Interval is CheckpointInterval with its default applied.
func (a *Audit) Interval() time.Duration {
	if a.CheckpointInterval == 0 {
		return audit.DefaultCheckpointInterval
	}
	return time.Duration(a.CheckpointInterval)
}

func (a *Audit) validate(v *validator) {
	sinks := a.CheckpointDir != "" || a.CheckpointSyslog != ""
	switch {
	case a.CheckpointKeyFile != "" && !sinks:
		v.add("audit.checkpoint_key_file", "is set but checkpoints would go nowhere; set audit.checkpoint_dir (or audit.checkpoint_syslog) too")
	case a.CheckpointKeyFile == "" && sinks:
		v.add("audit.checkpoint_key_file", "required to sign the checkpoints that audit.checkpoint_dir or audit.checkpoint_syslog receive; create one with `xaa audit keygen`")
	}
	if a.CheckpointSyslog != "" {
		if _, _, err := audit.ParseSyslogTarget(a.CheckpointSyslog); err != nil {
			v.add("audit.checkpoint_syslog", `must be "local", "udp://host:port" or "tcp://host:port", got %s`, quote(a.CheckpointSyslog))
		}
	}
	if d := a.Interval(); d < time.Second || d > time.Hour {
		v.add("audit.checkpoint_interval", "must be 0 (the default, %s) or from 1s to 1h, got %s", audit.DefaultCheckpointInterval, time.Duration(a.CheckpointInterval))
	}
}
