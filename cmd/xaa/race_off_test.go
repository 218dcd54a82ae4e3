//go:build !race

package main

// raceDetector is true in a -race build, where everything runs several
// times slower: timing deadlines are then logged, not asserted.
const raceDetector = false
