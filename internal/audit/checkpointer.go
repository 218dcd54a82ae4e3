package audit

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/openxaa/xaa/internal/store"
)

// HeadReader reads the audit streams' heads (*sqlstore.DB does).
type HeadReader interface {
	AuditHeads(ctx context.Context) ([]store.AuditHead, error)
}

// Sink stores signed checkpoints outside the database. Write returns only
// once they are durable (or delivered), so a checkpoint that was reported
// written is never lost to a crash.
type Sink interface {
	WriteCheckpoints(ctx context.Context, cps []Checkpoint) error
}

// DefaultCheckpointInterval is how often a Checkpointer signs heads that
// changed.
const DefaultCheckpointInterval = 30 * time.Second

// CheckpointerOptions tunes a Checkpointer. A nil *CheckpointerOptions
// means the defaults.
type CheckpointerOptions struct {
	// Interval between checkpoints; 0 means DefaultCheckpointInterval.
	Interval time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives failures to read heads or to write; nil discards.
	Logger *slog.Logger
}

// Checkpointer periodically signs the head of every audit stream that
// changed since it last wrote, and writes the checkpoints to its sinks.
// Its first round signs every head. A sink that fails gets the same heads
// again next round.
type Checkpointer struct {
	heads    HeadReader
	key      ed25519.PrivateKey
	sinks    []Sink
	interval time.Duration
	now      func() time.Time
	log      *slog.Logger

	mu      sync.Mutex
	written []map[string]store.AuditHead // per sink: the last head it has durably
}

// NewCheckpointer returns a Checkpointer signing with key. key is the
// caller's; the Checkpointer does not copy it.
func NewCheckpointer(heads HeadReader, key ed25519.PrivateKey, sinks []Sink, opts *CheckpointerOptions) (*Checkpointer, error) {
	var o CheckpointerOptions
	if opts != nil {
		o = *opts
	}
	switch {
	case heads == nil:
		return nil, errors.New("audit: checkpointer needs a head reader")
	case len(key) != ed25519.PrivateKeySize:
		return nil, fmt.Errorf("%w: checkpointer needs an Ed25519 private key", ErrInvalidKey)
	case len(sinks) == 0:
		return nil, errors.New("audit: checkpointer needs at least one sink (a file or syslog)")
	case o.Interval < 0:
		return nil, fmt.Errorf("audit: checkpoint interval %s is negative", o.Interval)
	}
	if o.Interval == 0 {
		o.Interval = DefaultCheckpointInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	written := make([]map[string]store.AuditHead, len(sinks))
	for i := range written {
		written[i] = map[string]store.AuditHead{}
	}
	return &Checkpointer{heads: heads, key: key, sinks: sinks, interval: o.Interval, now: o.Now, log: o.Logger, written: written}, nil
}

// Checkpoint signs every head that changed since a sink last wrote it and
// writes it there. It returns how many checkpoints were written in all
// and the sinks' errors joined.
func (c *Checkpointer) Checkpoint(ctx context.Context) (int, error) {
	heads, err := c.heads.AuditHeads(ctx)
	if err != nil {
		return 0, fmt.Errorf("audit: checkpoint: read heads: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	signed := map[string]Checkpoint{}
	var errs []error
	n := 0
	for i, sink := range c.sinks {
		var cps []Checkpoint
		for _, h := range heads {
			if c.written[i][h.Stream] == h {
				continue
			}
			cp, ok := signed[h.Stream]
			if !ok {
				cp = SignCheckpoint(c.key, h, now)
				signed[h.Stream] = cp
			}
			cps = append(cps, cp)
		}
		if len(cps) == 0 {
			continue
		}
		if err := sink.WriteCheckpoints(ctx, cps); err != nil {
			errs = append(errs, err)
			continue
		}
		for _, cp := range cps {
			c.written[i][cp.Stream] = store.AuditHead{Stream: cp.Stream, Seq: cp.Seq, Hash: cp.Hash}
		}
		n += len(cps)
	}
	return n, errors.Join(errs...)
}

// shutdownTimeout bounds the final checkpoint at shutdown.
const shutdownTimeout = 10 * time.Second

// Run checkpoints at once, then every interval until ctx ends, and once
// more at shutdown (with a fresh deadline), so the last records a process
// wrote are covered.
func (c *Checkpointer) Run(ctx context.Context) {
	t := time.NewTicker(c.interval)
	defer t.Stop()
	for {
		c.round(ctx)
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout)
			defer cancel()
			c.round(fctx)
			return
		case <-t.C:
		}
	}
}

func (c *Checkpointer) round(ctx context.Context) {
	n, err := c.Checkpoint(ctx)
	if err != nil && ctx.Err() == nil {
		c.log.Error("audit checkpoint", "err", err)
	}
	if n > 0 {
		c.log.Debug("audit checkpoints written", "count", n)
	}
}
