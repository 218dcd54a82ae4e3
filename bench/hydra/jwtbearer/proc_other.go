//go:build !linux

package main

import (
	"errors"
	"time"
)

// processCPU is only implemented on Linux; the report then omits CPU.
func processCPU(int) (time.Duration, error) {
	return 0, errors.New("process CPU is read from /proc, which only Linux has")
}

// postgresBackendsCPU is only implemented on Linux.
func postgresBackendsCPU(string) (map[int]time.Duration, error) {
	return nil, errors.New("backend CPU is read from /proc, which only Linux has")
}

// loadAverage is only read on Linux.
func loadAverage() string { return "?" }
