package main

import (
	"slices"
	"strings"
)

// backendDatabase reads the database from a PostgreSQL backend's process
// title, as /proc/<pid>/cmdline shows it: "postgres: [cluster: ]user db
// host(port) state". Background processes (checkpointer, walwriter, ...)
// have no host field and report false.
func backendDatabase(cmdline string) (string, bool) {
	f := strings.Fields(strings.ReplaceAll(cmdline, "\x00", " "))
	if len(f) < 4 || f[0] != "postgres:" {
		return "", false
	}
	host := slices.IndexFunc(f, func(s string) bool {
		return s == "[local]" || (strings.Contains(s, "(") && strings.HasSuffix(s, ")"))
	})
	if host < 3 {
		return "", false
	}
	return f[host-1], true
}
