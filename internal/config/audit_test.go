package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestValidateAudit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		audit Audit
		want  string // "" means valid; else the dotted key and a phrase
	}{
		{"off", Audit{}, ""},
		{"dir", Audit{CheckpointKeyFile: "/etc/xaa/cp.key", CheckpointDir: "/var/log/xaa"}, ""},
		{"syslog only", Audit{CheckpointKeyFile: "/k", CheckpointSyslog: "local"}, ""},
		{"both, udp, interval", Audit{CheckpointKeyFile: "/k", CheckpointDir: "/d", CheckpointSyslog: "udp://10.0.0.1:514",
			CheckpointInterval: Duration(time.Second)}, ""},
		{"tcp, 1h", Audit{CheckpointKeyFile: "/k", CheckpointSyslog: "tcp://logs.example.com:601", CheckpointInterval: Duration(time.Hour)}, ""},
		{"key without sink", Audit{CheckpointKeyFile: "/k"}, "audit.checkpoint_key_file: is set but checkpoints would go nowhere"},
		{"dir without key", Audit{CheckpointDir: "/d"}, "audit.checkpoint_key_file: required"},
		{"syslog without key", Audit{CheckpointSyslog: "local"}, "audit.checkpoint_key_file: required"},
		{"syslog scheme", Audit{CheckpointKeyFile: "/k", CheckpointSyslog: "http://h:514"}, "audit.checkpoint_syslog: must be"},
		{"syslog no port", Audit{CheckpointKeyFile: "/k", CheckpointSyslog: "udp://h"}, "audit.checkpoint_syslog: must be"},
		{"interval short", Audit{CheckpointKeyFile: "/k", CheckpointDir: "/d", CheckpointInterval: Duration(time.Millisecond)}, "audit.checkpoint_interval: must be"},
		{"interval long", Audit{CheckpointKeyFile: "/k", CheckpointDir: "/d", CheckpointInterval: Duration(2 * time.Hour)}, "audit.checkpoint_interval: must be"},
		{"interval negative", Audit{CheckpointKeyFile: "/k", CheckpointDir: "/d", CheckpointInterval: Duration(-time.Second)}, "audit.checkpoint_interval: must be"},
	} {
		c := validConfig()
		c.Audit = tc.audit
		err := c.Validate()
		if tc.want == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.name, err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	a := Audit{}
	if a.Interval() != 30*time.Second || a.Checkpoints() {
		t.Errorf("defaults: interval %s, checkpoints %v", a.Interval(), a.Checkpoints())
	}
}
