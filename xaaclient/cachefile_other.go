//go:build !unix

package xaaclient

import (
	"fmt"
	"io/fs"
)

// checkPrivate: outside Unix, file permissions are ACLs the standard
// library cannot inspect; the file is created in the user's own profile
// directory and only its type is checked.
func checkPrivate(path string, fi fs.FileInfo) error {
	if !fi.Mode().IsRegular() {
		return fmt.Errorf("%w: %s is not a regular file", ErrInsecureCacheFile, path)
	}
	return nil
}

func checkPrivateDir(string) error { return nil }

// lockFile: no cross-process lock outside Unix; updates within one process
// are still serialised.
func lockFile(string) (func(), error) { return func() {}, nil }

func syncDir(string) {}
