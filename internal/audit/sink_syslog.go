//go:build unix

package audit

import (
	"context"
	"fmt"
	"log/syslog"
	"strings"
)

// SyslogSink sends each checkpoint as one syslog message (facility auth,
// severity info, tag SyslogTag) whose text is the checkpoint's JSON line.
// Over UDP delivery is not confirmed; prefer tcp:// or the local daemon
// when syslog is the only copy.
type SyslogSink struct {
	w *syslog.Writer
}

// NewSyslogSink connects to target (see ParseSyslogTarget).
func NewSyslogSink(target string) (*SyslogSink, error) {
	network, addr, err := ParseSyslogTarget(target)
	if err != nil {
		return nil, err
	}
	w, err := syslog.Dial(network, addr, syslog.LOG_AUTH|syslog.LOG_INFO, SyslogTag)
	if err != nil {
		return nil, fmt.Errorf("audit: connect to syslog: %w", err)
	}
	return &SyslogSink{w: w}, nil
}

// WriteCheckpoints implements Sink.
func (s *SyslogSink) WriteCheckpoints(_ context.Context, cps []Checkpoint) error {
	for _, c := range cps {
		line, err := MarshalCheckpoint(c)
		if err != nil {
			return err
		}
		if err := s.w.Info(strings.TrimSuffix(string(line), "\n")); err != nil {
			return fmt.Errorf("audit: write checkpoint to syslog: %w", err)
		}
	}
	return nil
}

// Close closes the connection.
func (s *SyslogSink) Close() error { return s.w.Close() }
