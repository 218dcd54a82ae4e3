package httpserver

import (
	"net/http"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestServerTimeouts(t *testing.T) {
	t.Parallel()
	type limits struct {
		ReadHeader, Read, Write, Idle time.Duration
		MaxHeaderBytes                int
	}
	of := func(s *http.Server) limits {
		return limits{s.ReadHeaderTimeout, s.ReadTimeout, s.WriteTimeout, s.IdleTimeout, s.MaxHeaderBytes}
	}
	tests := []struct {
		name         string
		opts         Options
		want         limits
		wantShutdown time.Duration
	}{
		{
			name:         "defaults",
			opts:         Options{},
			want:         limits{5 * time.Second, 10 * time.Second, 15 * time.Second, 60 * time.Second, 16 << 10},
			wantShutdown: 10 * time.Second,
		},
		{
			name: "overrides",
			opts: Options{ReadHeaderTimeout: time.Second, ReadTimeout: 2 * time.Second, WriteTimeout: 3 * time.Second,
				IdleTimeout: 4 * time.Second, MaxHeaderBytes: 8 << 10, ShutdownTimeout: time.Minute},
			want:         limits{time.Second, 2 * time.Second, 3 * time.Second, 4 * time.Second, 8 << 10},
			wantShutdown: time.Minute,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.opts.Name, tt.opts.Addr, tt.opts.AdminAddr = "test", "127.0.0.1:0", "127.0.0.1:0"
			tt.opts.Handler = http.NotFoundHandler()
			s, err := New(tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			for name, srv := range map[string]*http.Server{"public": s.public, "admin": s.admin} {
				if diff := cmp.Diff(tt.want, of(srv)); diff != "" {
					t.Errorf("%s server limits (-want +got):\n%s", name, diff)
				}
				if srv.ErrorLog == nil {
					t.Errorf("%s server logs errors to the global logger", name)
				}
			}
			if s.shutdownTimeout != tt.wantShutdown {
				t.Errorf("shutdown timeout = %v, want %v", s.shutdownTimeout, tt.wantShutdown)
			}
		})
	}
}
