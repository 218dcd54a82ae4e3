// Package secretfile reads secrets (wrapping keys, signing keys, client
// secrets) from files only their owner can read: a secret readable by
// others is refused rather than used, so the mistake is fixed before the
// secret leaks further. Symlinks are followed, because secret mounts
// (Kubernetes projected volumes) are symlinks; the checks apply to the file
// actually opened.
package secretfile

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
)

var (
	// ErrInsecure: the file is not a regular file of the effective user
	// readable by its owner alone, or it changed while being opened.
	ErrInsecure = errors.New("secretfile: insecure file")
	// ErrTooLarge: the file holds more than the caller's limit.
	ErrTooLarge = errors.New("secretfile: file too large")
)

// Read reads a secret file of at most limit bytes. It must be a regular
// file owned by the effective user with no group or other permission bits,
// checked again on the open descriptor so a swap between check and read is
// caught. Every refusal of the file
// itself wraps ErrInsecure. The caller clears the returned bytes.
func Read(path string, limit int) ([]byte, error) {
	// Stat before opening: opening a FIFO would block until a writer shows up.
	before, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	if err := checkInfo(path, before); err != nil {
		return nil, err
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	defer f.Close()
	opened, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("secretfile: %w", err)
	}
	if !os.SameFile(before, opened) {
		return nil, fmt.Errorf("%w: %s changed while it was being opened", ErrInsecure, path)
	}
	if err := checkInfo(path, opened); err != nil {
		return nil, err
	}
	buf, err := io.ReadAll(io.LimitReader(f, int64(limit)+1))
	if err != nil {
		clear(buf)
		return nil, fmt.Errorf("secretfile: read %s: %w", path, err)
	}
	if len(buf) > limit {
		clear(buf)
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrTooLarge, path, limit)
	}
	return buf, nil
}

func checkInfo(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file (%s)", ErrInsecure, path, fi.Mode().Type())
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return fmt.Errorf("%w: %s has mode %04o, readable beyond its owner; run `chmod 600 %s`",
			ErrInsecure, path, perm, path)
	}
	if uid, ok := fileOwner(fi); ok && uid != os.Geteuid() {
		return fmt.Errorf("%w: %s is owned by uid %d, not by the service user (uid %d); run `chown` on it",
			ErrInsecure, path, uid, os.Geteuid())
	}
	return nil
}
