package config

import (
	"errors"
	"fmt"
	"strings"
)

// Kinds of configuration error, matched with errors.Is. Every error that
// Load and Validate return is an *Error (several are joined with
// errors.Join) wrapping one of these, or, when a file cannot be read at
// all, wrapping the *fs.PathError.
var (
	// ErrSyntax: the file is not YAML, or is YAML this config cannot hold
	// (no document, several documents, aliases, merge keys, custom tags).
	ErrSyntax = errors.New("config: syntax error")
	// ErrUnknownKey: a key the schema does not have, often a typo.
	ErrUnknownKey = errors.New("config: unknown key")
	// ErrDuplicateKey: a key given twice in one mapping.
	ErrDuplicateKey = errors.New("config: duplicate key")
	// ErrType: a value of the wrong type, such as a word where a number
	// belongs, or a duration without a unit.
	ErrType = errors.New("config: wrong type")
	// ErrTooLarge: the config file or a _FILE secret is over its size cap.
	ErrTooLarge = errors.New("config: file too large")
	// ErrInsecureFile: the config file holds a secret but other users can
	// read it.
	ErrInsecureFile = errors.New("config: insecure file permissions")
	// ErrEnv: an environment override that cannot be applied.
	ErrEnv = errors.New("config: bad environment override")
	// ErrInvalid: a value that parses but is not allowed (Validate).
	ErrInvalid = errors.New("config: invalid value")
)

// Error is one problem, located as precisely as known: a file position
// for a value from the config file, the variable's name for one from the
// environment. Its message never contains a secret.
type Error struct {
	// File is the config file's path as given to Load; empty when the
	// problem is not in the file.
	File string
	// Line and Column are 1-based; 0 when unknown.
	Line, Column int
	// Env is the environment variable the value came from, if any.
	Env string
	// Path is the dotted key path, such as "database.url" or
	// "listen.trusted_proxies[2]"; empty for problems with the whole file.
	Path string
	// Msg says what is wrong and, where it can, how to fix it.
	Msg string
	// Err is the kind (ErrSyntax, ...) and sometimes an underlying cause
	// such as a *fs.PathError.
	Err error
}

// Error formats e as "file:line:col: path: msg", dropping what is unknown.
func (e *Error) Error() string {
	var b strings.Builder
	switch {
	case e.File != "" && e.Line > 0 && e.Column > 0:
		fmt.Fprintf(&b, "%s:%d:%d: ", e.File, e.Line, e.Column)
	case e.File != "" && e.Line > 0:
		fmt.Fprintf(&b, "%s:%d: ", e.File, e.Line)
	case e.File != "":
		b.WriteString(e.File + ": ")
	case e.Env != "":
		b.WriteString(e.Env + ": ")
	}
	if e.Path != "" {
		b.WriteString(e.Path + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Unwrap returns the kind and cause.
func (e *Error) Unwrap() error { return e.Err }

// source is where a value came from.
type source struct {
	file      string
	line, col int
	env       string
}

// maxErrors bounds how many problems one Load reports: past that, the file
// is probably not a config file at all and more lines would only bury the
// first ones.
const maxErrors = 20

// errorList collects problems up to maxErrors.
type errorList struct {
	errs    []error
	dropped int
}

func (l *errorList) add(err error) {
	if len(l.errs) >= maxErrors {
		l.dropped++
		return
	}
	l.errs = append(l.errs, err)
}

// err joins the problems, or returns nil if there are none.
func (l *errorList) err(file string) error {
	if l.dropped > 0 {
		more := &Error{File: file, Msg: fmt.Sprintf("%d more problems not shown", l.dropped)}
		if first, ok := l.errs[0].(*Error); ok {
			more.Err = first.Err
		}
		l.errs = append(l.errs, more)
	}
	return errors.Join(l.errs...)
}
