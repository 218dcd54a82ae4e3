package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
)

// FileSink appends checkpoints as JSON lines to one file per UTC day,
// checkpoints-YYYY-MM-DD.jsonl in its directory, and fsyncs before
// returning. Several processes may share the directory: each write is one
// append.
type FileSink struct {
	dir string
}

// CheckpointFilePattern matches the files a FileSink writes.
const CheckpointFilePattern = "checkpoints-*.jsonl"

// NewFileSink returns a FileSink writing into dir, which must exist and be
// a directory.
func NewFileSink(dir string) (*FileSink, error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("audit: checkpoint directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("audit: checkpoint directory %s is not a directory", dir)
	}
	return &FileSink{dir: dir}, nil
}

// WriteCheckpoints implements Sink.
func (s *FileSink) WriteCheckpoints(_ context.Context, cps []Checkpoint) error {
	if len(cps) == 0 {
		return nil
	}
	var b bytes.Buffer
	for _, c := range cps {
		line, err := MarshalCheckpoint(c)
		if err != nil {
			return err
		}
		b.Write(line)
	}
	name := filepath.Join(s.dir, "checkpoints-"+cps[0].Time.UTC().Format("2006-01-02")+".jsonl")
	_, statErr := os.Stat(name)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("audit: checkpoint file: %w", err)
	}
	if _, err := f.Write(b.Bytes()); err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: write checkpoint file %s: %w", name, err)
	}
	if err := f.Sync(); err != nil {
		_ = f.Close()
		return fmt.Errorf("audit: sync checkpoint file %s: %w", name, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("audit: close checkpoint file %s: %w", name, err)
	}
	if created {
		// The new file's directory entry must be durable too.
		if d, err := os.Open(s.dir); err == nil {
			err = d.Sync()
			_ = d.Close()
			if err != nil {
				return fmt.Errorf("audit: sync checkpoint directory %s: %w", s.dir, err)
			}
		}
	}
	return nil
}

// SyslogTag is the tag of checkpoint messages sent to syslog.
const SyslogTag = "xaa-audit"

// ParseSyslogTarget parses audit.checkpoint_syslog: "local" for the local
// syslog daemon, or udp://host:port, tcp://host:port.
func ParseSyslogTarget(s string) (network, addr string, err error) {
	if s == "local" {
		return "", "", nil
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "udp" && u.Scheme != "tcp") || u.Host == "" || u.Port() == "" ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.User != nil || u.Fragment != "" {
		return "", "", fmt.Errorf(`audit: syslog target must be "local", "udp://host:port" or "tcp://host:port"`)
	}
	return u.Scheme, u.Host, nil
}

// extractSyslogLine returns the checkpoint JSON of a syslog line tagged
// SyslogTag ("... xaa-audit[pid]: {...}"), or nil for any other line.
func extractSyslogLine(line []byte) []byte {
	i := bytes.Index(line, []byte(SyslogTag))
	if i < 0 {
		return nil
	}
	j := bytes.IndexByte(line[i:], '{')
	if j < 0 || !strings.HasPrefix(strings.TrimLeft(string(line[i+len(SyslogTag):i+j]), "[0123456789]"), ":") {
		return nil
	}
	return line[i+j:]
}
