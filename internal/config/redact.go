package config

import (
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// Redacted returns a deep copy of c that is safe to print or log: the
// wrapping key reads "xxxxx", and so does the password in the database
// URL. A database URL that cannot be parsed is replaced whole, since its
// password cannot be located.
func (c *Config) Redacted() *Config {
	r := *c
	r.Listen.TrustedProxies = slices.Clone(c.Listen.TrustedProxies)
	r.sources = maps.Clone(c.sources)
	r.AuthServer = c.AuthServer.clone()
	r.Gateway = c.Gateway.redacted()
	r.Admin = c.Admin.redacted()
	if r.Keys.WrappingKey != "" {
		r.Keys.WrappingKey = redactedText
	}
	r.Database.URL = SecretURL(redactURL(c.Database.URL.Reveal()))
	return &r
}

// String renders the redacted config as YAML, as it would appear in a
// file, for `xaa config show` and support tickets.
func (c Config) String() string {
	out, err := yaml.Marshal(c.Redacted())
	if err != nil {
		return fmt.Sprintf("config: cannot render: %v", err)
	}
	return string(out)
}

// LogValue implements slog.LogValuer: the redacted config as nested groups
// keyed by the file's key names.
func (c Config) LogValue() slog.Value {
	return logValue(reflect.ValueOf(*c.Redacted()))
}

var (
	durationType  = reflect.TypeFor[Duration]()
	secretType    = reflect.TypeFor[Secret]()
	secretURLType = reflect.TypeFor[SecretURL]()
)

func logValue(v reflect.Value) slog.Value {
	switch {
	case v.Type() == durationType:
		return slog.StringValue(v.Interface().(Duration).String())
	case v.Type() == secretType:
		return v.Interface().(Secret).LogValue()
	case v.Type() == secretURLType:
		return v.Interface().(SecretURL).LogValue()
	}
	switch v.Kind() {
	case reflect.Struct:
		var attrs []slog.Attr
		for _, f := range structFields(v.Type()) {
			attrs = append(attrs, slog.Attr{Key: f.name, Value: logValue(v.Field(f.index))})
		}
		return slog.GroupValue(attrs...)
	case reflect.Pointer:
		if v.IsNil() {
			return slog.AnyValue(nil)
		}
		return logValue(v.Elem())
	case reflect.String:
		return slog.StringValue(v.String())
	default:
		return slog.AnyValue(v.Interface())
	}
}

// redactURL replaces the secrets in a database URL: the password in the
// user info and any query parameter whose name mentions a password
// ("pass"), secret or token. A value that is not a URL this package accepts is replaced
// whole, because its secret cannot be located (a keyword/value DSN such as
// "host=db password=..." parses as a relative URL).
func redactURL(s string) string {
	if s == "" {
		return ""
	}
	u, err := url.Parse(s)
	if err != nil {
		return redactedText
	}
	switch u.Scheme {
	case "sqlite", "file":
	case "postgres", "postgresql", "http", "https": // http(s): gateway upstream URLs
		if u.Opaque != "" {
			return redactedText
		}
	default:
		return redactedText
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), redactedText)
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return redactedText
		}
		changed := false
		for k := range q {
			if isSecretParam(k) {
				q[k] = []string{redactedText}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

func isSecretParam(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "pass") || strings.Contains(n, "secret") || strings.Contains(n, "token")
}

// urlHasPassword reports whether a database URL holds a password, in its
// user info or its query, or might (a keyword/value DSN, or a URL that
// does not parse, mentioning a password).
func urlHasPassword(s string) bool {
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" {
		return strings.Contains(strings.ToLower(s), "password")
	}
	if _, ok := u.User.Password(); ok {
		return true
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return strings.Contains(strings.ToLower(u.RawQuery), "password")
	}
	for k := range q {
		if isSecretParam(k) {
			return true
		}
	}
	return false
}

// clone deep-copies a, so a Redacted copy shares no slices with c.
func (a AuthServer) clone() AuthServer {
	out := AuthServer{
		TrustedIssuers: slices.Clone(a.TrustedIssuers),
		Resources:      slices.Clone(a.Resources),
		Clients:        slices.Clone(a.Clients),
	}
	for i := range out.TrustedIssuers {
		out.TrustedIssuers[i].Algorithms = slices.Clone(out.TrustedIssuers[i].Algorithms)
	}
	for i := range out.Resources {
		out.Resources[i].Scopes = slices.Clone(out.Resources[i].Scopes)
		out.Resources[i].Tools = cloneTools(out.Resources[i].Tools)
	}
	for i := range out.Clients {
		out.Clients[i].Resources = slices.Clone(out.Clients[i].Resources)
		out.Clients[i].Scopes = slices.Clone(out.Clients[i].Scopes)
	}
	return out
}

// cloneTools deep-copies a tool map. An absent map becomes an empty one,
// which means the same (no tools) and is what the rendered copy ("tools:
// {}") parses back to.
func cloneTools(m map[string]ToolRule) map[string]ToolRule {
	out := make(map[string]ToolRule, len(m))
	for name, t := range m {
		t.Scopes, t.ACRValues = slices.Clone(t.Scopes), slices.Clone(t.ACRValues)
		out[name] = t
	}
	return out
}
