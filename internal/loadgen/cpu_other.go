//go:build !unix

package loadgen

import "time"

// processCPU is unknown here; Run then omits cpu-us/op.
func processCPU() time.Duration { return 0 }
