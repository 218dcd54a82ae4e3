package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
)

// Environment variables that override the config file. The list is short
// and written out by hand: an operator can read here exactly which
// settings the environment can change. An empty variable counts as unset.
const (
	// EnvDatabaseURL overrides database.url.
	EnvDatabaseURL = "XAA_DATABASE_URL"
	// EnvDatabaseURLFile names a file whose content overrides database.url
	// (a mounted secret; one trailing newline is dropped).
	EnvDatabaseURLFile = "XAA_DATABASE_URL_FILE"
	// EnvKeysWrappingKey overrides the wrapping key with its base64 value.
	EnvKeysWrappingKey = "XAA_KEYS_WRAPPING_KEY"
	// EnvKeysWrappingKeyFile overrides keys.wrapping_key_file. The key
	// manager, not Load, reads that file, so it can check the file's mode
	// and owner.
	EnvKeysWrappingKeyFile = "XAA_KEYS_WRAPPING_KEY_FILE"
	// EnvLogLevel overrides log.level.
	EnvLogLevel = "XAA_LOG_LEVEL"
	// EnvListenAddr overrides listen.addr.
	EnvListenAddr = "XAA_LISTEN_ADDR"
	// EnvAdminAddr overrides listen.admin_addr.
	EnvAdminAddr = "XAA_ADMIN_ADDR"
)

// maxSecretFileSize caps what an XAA_*_FILE variable makes Load read.
const maxSecretFileSize = 64 << 10

// Load reads the config file at path (a regular file of at most 1 MiB) on
// top of Default, then applies the XAA_* environment overrides (see
// EnvDatabaseURL and the constants after it) looked up with getenv. With
// path "" there is no file: defaults plus environment. A nil getenv is an
// empty environment.
//
// A file that holds a secret (keys.wrapping_key, a password in
// database.url) must not be readable by group or others.
//
// An override of the wrapping key replaces the file's key source
// entirely: XAA_KEYS_WRAPPING_KEY clears keys.wrapping_key_file and
// XAA_KEYS_WRAPPING_KEY_FILE clears keys.wrapping_key, so a deployment can
// swap where the key comes from without editing the file.
//
// Load does not call Validate, so that the caller can apply command-line
// flags first and then report every remaining problem at once. Errors
// are *Error values (joined when there are several) that name the file,
// line, column and key, or the environment variable.
func Load(path string, getenv func(string) string) (*Config, error) {
	cfg := Default()
	if path != "" {
		data, mode, err := readFile(path, maxFileSize)
		if err != nil {
			return nil, fileError(path, err)
		}
		if cfg, err = parse(path, data); err != nil {
			return nil, err
		}
		if err := checkFileMode(path, mode, cfg); err != nil {
			return nil, err
		}
	}
	if getenv != nil {
		if err := applyEnv(cfg, getenv); err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

// errFileTooLarge is what readFile returns past its limit.
var errFileTooLarge = errors.New("file too large")

// readFile reads a regular file of at most limit bytes. It checks the
// type before opening, because opening a FIFO blocks until a writer
// appears, and again on the open file.
func readFile(path string, limit int64) ([]byte, fs.FileMode, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	if fi, err = f.Stat(); err != nil {
		return nil, 0, err
	}
	if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, 0, err
	}
	if int64(len(data)) > limit {
		return nil, 0, fmt.Errorf("%w: larger than %d bytes", errFileTooLarge, limit)
	}
	return data, fi.Mode(), nil
}

// fileError describes a failure to read the config file. Its Err is the
// cause (a *fs.PathError, say), plus ErrTooLarge for an oversized file.
func fileError(path string, err error) error {
	e := &Error{File: path, Msg: "cannot read the config file: " + causeText(err), Err: err}
	if errors.Is(err, errFileTooLarge) {
		e.Err = errors.Join(ErrTooLarge, err)
	}
	return e
}

// causeText is err's message without the path a *fs.PathError repeats.
func causeText(err error) string {
	if pe, ok := errors.AsType[*fs.PathError](err); ok {
		return pe.Err.Error()
	}
	return err.Error()
}

// checkFileMode refuses a config file that holds a secret and that users
// other than its owner can read: the secret has then already leaked to
// them. A file without secrets may be world-readable (Kubernetes mounts
// ConfigMaps 0644).
func checkFileMode(path string, mode fs.FileMode, c *Config) error {
	if runtime.GOOS == "windows" || mode.Perm()&0o077 == 0 {
		return nil
	}
	secretPath := findSecret(reflect.ValueOf(c).Elem(), "")
	if secretPath == "" {
		return nil
	}
	instead, ok := secretAdvice[secretPath]
	if !ok {
		instead = "move the secret out of the file"
	}
	e := c.errorAt(secretPath, ErrInsecureFile,
		fmt.Sprintf("holds a secret, but the file is readable by group or others (mode %04o); run `chmod 600 %s`, or %s",
			mode.Perm(), path, instead))
	e.File = path // even if the position is unknown
	return e
}

// secretAdvice says where a secret goes instead of the config file.
var secretAdvice = map[string]string{
	"keys.wrapping_key": "set keys.wrapping_key_file instead",
	"database.url":      "move the URL to a file named by " + EnvDatabaseURLFile,
}

// findSecret returns the path of the first setting in v that holds a
// secret: a non-empty Secret, or a SecretURL with a password. It covers
// sections added later without being told about them.
func findSecret(v reflect.Value, path string) string {
	switch v.Type() {
	case secretType:
		if v.String() != "" {
			return path
		}
		return ""
	case secretURLType:
		if urlHasPassword(v.String()) {
			return path
		}
		return ""
	}
	switch v.Kind() {
	case reflect.Pointer:
		if !v.IsNil() {
			return findSecret(v.Elem(), path)
		}
	case reflect.Struct:
		for _, f := range structFields(v.Type()) {
			if p := findSecret(v.Field(f.index), joinPath(path, f.name)); p != "" {
				return p
			}
		}
	case reflect.Slice:
		for i := range v.Len() {
			if p := findSecret(v.Index(i), fmt.Sprintf("%s[%d]", path, i)); p != "" {
				return p
			}
		}
	case reflect.Map:
		keys := v.MapKeys()
		slices.SortFunc(keys, func(a, b reflect.Value) int { return strings.Compare(a.String(), b.String()) })
		for _, k := range keys {
			if p := findSecret(v.MapIndex(k), joinMapKey(path, k.String())); p != "" {
				return p
			}
		}
	}
	return ""
}

func applyEnv(c *Config, getenv func(string) string) error {
	var errs errorList

	switch url, urlFile := getenv(EnvDatabaseURL), getenv(EnvDatabaseURLFile); {
	case url != "" && urlFile != "":
		errs.add(bothSet(EnvDatabaseURL, EnvDatabaseURLFile))
	case url != "":
		c.Database.URL = SecretURL(url)
		c.setEnvSource("database.url", EnvDatabaseURL)
	case urlFile != "":
		v, err := readSecretFile(EnvDatabaseURLFile, urlFile)
		if err != nil {
			errs.add(err)
			break
		}
		c.Database.URL = SecretURL(v)
		c.setEnvSource("database.url", EnvDatabaseURLFile)
	}

	switch key, keyFile := getenv(EnvKeysWrappingKey), getenv(EnvKeysWrappingKeyFile); {
	case key != "" && keyFile != "":
		errs.add(bothSet(EnvKeysWrappingKey, EnvKeysWrappingKeyFile))
	case key != "":
		c.Keys.WrappingKey, c.Keys.WrappingKeyFile = Secret(key), ""
		c.setEnvSource("keys.wrapping_key", EnvKeysWrappingKey)
		delete(c.sources, "keys.wrapping_key_file")
	case keyFile != "":
		c.Keys.WrappingKey, c.Keys.WrappingKeyFile = "", keyFile
		c.setEnvSource("keys.wrapping_key_file", EnvKeysWrappingKeyFile)
		delete(c.sources, "keys.wrapping_key")
	}

	for _, o := range []struct {
		env, path string
		dst       *string
	}{
		{EnvLogLevel, "log.level", &c.Log.Level},
		{EnvListenAddr, "listen.addr", &c.Listen.Addr},
		{EnvAdminAddr, "listen.admin_addr", &c.Listen.AdminAddr},
	} {
		if v := getenv(o.env); v != "" {
			*o.dst = v
			c.setEnvSource(o.path, o.env)
		}
	}
	return errs.err("")
}

func bothSet(name, fileName string) error {
	return &Error{Env: name, Err: ErrEnv,
		Msg: fmt.Sprintf("both %s and %s are set; unset one of them", name, fileName)}
}

// readSecretFile reads the value of a _FILE variable: a whole file, less
// one trailing newline ("\n" or "\r\n", what `echo` and editors add).
func readSecretFile(env, path string) (string, error) {
	data, _, err := readFile(path, maxSecretFileSize)
	if err != nil {
		kind := error(ErrEnv)
		if errors.Is(err, errFileTooLarge) {
			kind = ErrTooLarge
		}
		return "", &Error{Env: env, Err: errors.Join(kind, err),
			Msg: fmt.Sprintf("cannot read %s: %s", path, causeText(err))}
	}
	if d, ok := bytes.CutSuffix(data, []byte("\r\n")); ok {
		data = d
	} else {
		data = bytes.TrimSuffix(data, []byte("\n"))
	}
	if len(data) == 0 {
		return "", &Error{Env: env, Err: ErrEnv, Msg: fmt.Sprintf("%s is empty", path)}
	}
	return string(data), nil
}

func (c *Config) setEnvSource(path, env string) {
	if c.sources == nil {
		c.sources = make(map[string]source)
	}
	c.sources[path] = source{env: env}
}

// errorAt builds an error about the value at path, located where that
// value came from.
func (c *Config) errorAt(path string, kind error, msg string) *Error {
	e := &Error{Path: path, Msg: msg, Err: kind}
	if s, ok := c.sources[path]; ok {
		e.File, e.Line, e.Column, e.Env = s.file, s.line, s.col, s.env
	}
	return e
}
