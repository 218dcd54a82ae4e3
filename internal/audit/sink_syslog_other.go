//go:build !unix

package audit

import (
	"context"
	"errors"
)

// SyslogSink is not available on this platform.
type SyslogSink struct{}

// NewSyslogSink reports that syslog is not available here.
func NewSyslogSink(target string) (*SyslogSink, error) {
	if _, _, err := ParseSyslogTarget(target); err != nil {
		return nil, err
	}
	return nil, errors.New("audit: syslog is not available on this platform; use a checkpoint directory")
}

// WriteCheckpoints implements Sink.
func (s *SyslogSink) WriteCheckpoints(context.Context, []Checkpoint) error {
	return errors.New("audit: syslog is not available on this platform")
}

// Close does nothing.
func (s *SyslogSink) Close() error { return nil }
