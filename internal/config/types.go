package config

import (
	"fmt"
	"log/slog"
	"time"

	yaml "go.yaml.in/yaml/v3"
)

// Duration is a time.Duration written as a Go duration string: "90s",
// "5m", "1h30m". A bare number is refused, because "300" could mean
// seconds or nanoseconds and a wrong guess silently changes a token
// lifetime; the one exception is 0, which needs no unit. Negative values
// are refused.
type Duration time.Duration

// String formats d like time.Duration.
func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes d in the same form UnmarshalYAML reads.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML implements yaml.Unmarshaler.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return fmt.Errorf(`expected a duration such as "90s" or "5m", got %s`, describeKind(n))
	}
	v, err := parseDuration(n.Value)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// parseDuration parses a config duration. Its messages quote s, which is
// fine because a duration is never a secret.
func parseDuration(s string) (time.Duration, error) {
	if s == "0" {
		return 0, nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		if isBareNumber(s) && len(s) <= maxQuoted {
			return 0, fmt.Errorf(`expected a duration with a unit, got %s; write for example "%ss" for seconds`, quote(s), s)
		}
		return 0, fmt.Errorf(`expected a duration such as "90s", "5m" or "1h30m", got %s`, quote(s))
	}
	if v < 0 {
		return 0, fmt.Errorf("must not be negative, got %s", quote(s))
	}
	return v, nil
}

func isBareNumber(s string) bool {
	digits := 0
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '.':
		case (r == '-' || r == '+') && i == 0:
		default:
			return false
		}
	}
	return digits > 0
}

// redactedText replaces a secret wherever config is printed.
const redactedText = "xxxxx"

// Secret is a string that does not print: fmt, slog, YAML and text
// marshalling all show "xxxxx" (or "" when unset). Reveal returns the
// value, so every use of the secret is visible in a code search.
type Secret string

// Reveal returns the secret value.
func (s Secret) Reveal() string { return string(s) }

// String implements fmt.Stringer without the value.
func (s Secret) String() string {
	if s == "" {
		return ""
	}
	return redactedText
}

// GoString implements fmt.GoStringer without the value, for %#v.
func (s Secret) GoString() string { return fmt.Sprintf("config.Secret(%q)", s.String()) }

// LogValue implements slog.LogValuer without the value.
func (s Secret) LogValue() slog.Value { return slog.StringValue(s.String()) }

// MarshalYAML implements yaml.Marshaler without the value.
func (s Secret) MarshalYAML() (any, error) { return s.String(), nil }

// MarshalText implements encoding.TextMarshaler (and so JSON) without the
// value.
func (s Secret) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// SecretURL is a URL that may hold a password (a database URL). It prints
// with the password replaced by "xxxxx" through fmt, slog, YAML and text
// marshalling alike; Reveal returns the URL itself.
type SecretURL string

// Reveal returns the URL with its password.
func (u SecretURL) Reveal() string { return string(u) }

// String implements fmt.Stringer with the password redacted.
func (u SecretURL) String() string { return redactURL(string(u)) }

// GoString implements fmt.GoStringer with the password redacted, for %#v.
func (u SecretURL) GoString() string { return fmt.Sprintf("config.SecretURL(%q)", u.String()) }

// LogValue implements slog.LogValuer with the password redacted.
func (u SecretURL) LogValue() slog.Value { return slog.StringValue(u.String()) }

// MarshalYAML implements yaml.Marshaler with the password redacted.
func (u SecretURL) MarshalYAML() (any, error) { return u.String(), nil }

// MarshalText implements encoding.TextMarshaler (and so JSON) with the
// password redacted.
func (u SecretURL) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// describeKind names what a node holds, for "expected X, got Y" messages.
// It shows a scalar's text only through quote, which truncates.
func describeKind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias"
	case yaml.ScalarNode:
		return quote(n.Value)
	default:
		return "nothing"
	}
}

// maxQuoted bounds how much of a user's value an error message repeats.
const maxQuoted = 40

// quote quotes s for an error message, cut to maxQuoted runes.
func quote(s string) string {
	n := 0
	for i := range s {
		if n == maxQuoted {
			return fmt.Sprintf("%q...", s[:i])
		}
		n++
	}
	return fmt.Sprintf("%q", s)
}
