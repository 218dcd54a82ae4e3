package xaaclient

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Challenge is one parsed WWW-Authenticate challenge (RFC 9110 §11.6.1).
// Scheme and parameter names are lower-cased (both are case-insensitive);
// parameter values are unquoted but otherwise as sent.
type Challenge struct {
	Scheme string
	// Token68 is the scheme's token68 form (Basic credentials, say); a
	// challenge has either Token68 or Params, never both.
	Token68 string
	Params  map[string]string
}

// maxChallengeHeader bounds the WWW-Authenticate values parsed from one
// response, so a hostile resource server cannot make the client parse
// megabytes.
const maxChallengeHeader = 16 << 10

// ErrMalformedChallenge is returned by ParseChallenges for a header that
// does not follow the RFC 9110 grammar.
var ErrMalformedChallenge = errors.New("xaaclient: malformed WWW-Authenticate header")

// ParseChallenges parses the WWW-Authenticate header values of one response
// (RFC 9110 §11.6.1, RFC 6750 §3, RFC 9728 §5.1, RFC 9470 §3). A parameter
// repeated within one challenge is an error: which of two scope values
// would the client trust?
func ParseChallenges(headers []string) ([]Challenge, error) {
	total := 0
	for _, h := range headers {
		total += len(h)
	}
	if total > maxChallengeHeader {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrMalformedChallenge, total, maxChallengeHeader)
	}
	var out []Challenge
	for _, h := range headers {
		cs, err := parseChallengeList(h)
		if err != nil {
			return nil, err
		}
		out = append(out, cs...)
	}
	return out, nil
}

// challengeParser walks one header value.
type challengeParser struct {
	s string
	i int
}

func (p *challengeParser) fail(what string) error {
	return fmt.Errorf("%w: %s at offset %d", ErrMalformedChallenge, what, p.i)
}

func (p *challengeParser) skipWS() {
	for p.i < len(p.s) && (p.s[p.i] == ' ' || p.s[p.i] == '\t') {
		p.i++
	}
}

// skipCommas skips empty list elements (RFC 9110 §5.6.1: recipients accept
// them) and the whitespace around them; it reports whether it saw a comma.
func (p *challengeParser) skipCommas() bool {
	seen := false
	for {
		p.skipWS()
		if p.i < len(p.s) && p.s[p.i] == ',' {
			p.i++
			seen = true
			continue
		}
		return seen
	}
}

func (p *challengeParser) token() string {
	start := p.i
	for p.i < len(p.s) && isTokenChar(p.s[p.i]) {
		p.i++
	}
	return p.s[start:p.i]
}

func parseChallengeList(h string) ([]Challenge, error) {
	p := &challengeParser{s: h}
	var out []Challenge
	p.skipCommas()
	for p.i < len(p.s) {
		scheme := p.token()
		if scheme == "" {
			return nil, p.fail("expected an auth-scheme")
		}
		c := Challenge{Scheme: strings.ToLower(scheme)}
		if p.i < len(p.s) && p.s[p.i] != ' ' && p.s[p.i] != '\t' && p.s[p.i] != ',' {
			return nil, p.fail("unexpected character after the auth-scheme")
		}
		p.skipWS()
		// token68 or the first auth-param, if any.
		if p.i < len(p.s) && p.s[p.i] != ',' {
			if t, ok := p.token68(); ok {
				c.Token68 = t
			} else if err := p.params(&c); err != nil {
				return nil, err
			}
		} else if p.i < len(p.s) {
			// "Scheme , name=value": parameters may follow empty elements.
			save := p.i
			p.skipCommas()
			if p.i < len(p.s) && p.looksLikeParam() {
				if err := p.params(&c); err != nil {
					return nil, err
				}
			} else {
				p.i = save
			}
		}
		out = append(out, c)
		if !p.skipCommas() && p.i < len(p.s) {
			return nil, p.fail("expected a comma between challenges")
		}
	}
	return out, nil
}

// looksLikeParam reports whether the input at p.i is "token BWS =" and not
// a token68 (which may end in "=" padding).
func (p *challengeParser) looksLikeParam() bool {
	save := p.i
	defer func() { p.i = save }()
	if p.token() == "" {
		return false
	}
	p.skipWS()
	if p.i >= len(p.s) || p.s[p.i] != '=' {
		return false
	}
	p.i++
	p.skipWS()
	return p.i < len(p.s) && (p.s[p.i] == '"' || isTokenChar(p.s[p.i])) && p.s[p.i] != '='
}

// token68 consumes a token68 if the input at p.i is one and is not the
// start of an auth-param.
func (p *challengeParser) token68() (string, bool) {
	if p.looksLikeParam() {
		return "", false
	}
	start := p.i
	for p.i < len(p.s) && isToken68Char(p.s[p.i]) {
		p.i++
	}
	for p.i < len(p.s) && p.s[p.i] == '=' {
		p.i++
	}
	end := p.i
	p.skipWS()
	if end == start || (p.i < len(p.s) && p.s[p.i] != ',') {
		p.i = start
		return "", false
	}
	return p.s[start:end], true
}

// params parses "#auth-param" up to the next challenge or the end.
func (p *challengeParser) params(c *Challenge) error {
	c.Params = map[string]string{}
	for {
		name := p.token()
		if name == "" {
			return p.fail("expected a parameter name")
		}
		p.skipWS()
		if p.i >= len(p.s) || p.s[p.i] != '=' {
			return p.fail("expected '=' after parameter " + strconv.Quote(name))
		}
		p.i++
		p.skipWS()
		var value string
		if p.i < len(p.s) && p.s[p.i] == '"' {
			v, err := p.quoted()
			if err != nil {
				return err
			}
			value = v
		} else {
			value = p.token()
			if value == "" {
				return p.fail("expected a token or quoted-string value for " + strconv.Quote(name))
			}
		}
		key := strings.ToLower(name)
		if _, dup := c.Params[key]; dup {
			return p.fail("parameter " + strconv.Quote(key) + " is repeated")
		}
		c.Params[key] = value
		// After a comma comes another parameter of this challenge or the
		// next challenge's scheme (a token not followed by "=").
		save := p.i
		if !p.skipCommas() {
			p.skipWS()
			if p.i < len(p.s) {
				return p.fail("expected a comma after parameter " + strconv.Quote(key))
			}
			return nil
		}
		if p.i >= len(p.s) || !p.looksLikeParam() {
			p.i = save
			return nil
		}
	}
}

// quoted consumes a quoted-string and returns its unescaped content.
func (p *challengeParser) quoted() (string, error) {
	p.i++ // opening quote
	var b strings.Builder
	for p.i < len(p.s) {
		ch := p.s[p.i]
		switch {
		case ch == '"':
			p.i++
			return b.String(), nil
		case ch == '\\':
			if p.i+1 >= len(p.s) || !isQuotedPairChar(p.s[p.i+1]) {
				return "", p.fail("bad quoted-pair")
			}
			b.WriteByte(p.s[p.i+1])
			p.i += 2
		case isQDText(ch):
			b.WriteByte(ch)
			p.i++
		default:
			return "", p.fail("control character in a quoted-string")
		}
	}
	return "", p.fail("unterminated quoted-string")
}

// String formats c as one challenge: parameters sorted by name, every
// value as a quoted-string. ParseChallenges reads it back as c for any c
// it could have produced.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	if c.Token68 != "" {
		b.WriteByte(' ')
		b.WriteString(c.Token68)
		return b.String()
	}
	names := make([]string, 0, len(c.Params))
	for k := range c.Params {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		if i == 0 {
			b.WriteByte(' ')
		} else {
			b.WriteString(", ")
		}
		b.WriteString(k)
		b.WriteString(`="`)
		v := c.Params[k]
		for j := 0; j < len(v); j++ {
			if v[j] == '"' || v[j] == '\\' {
				b.WriteByte('\\')
			}
			b.WriteByte(v[j])
		}
		b.WriteByte('"')
	}
	return b.String()
}

// isTokenChar is RFC 9110 tchar.
func isTokenChar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}

func isToken68Char(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	return strings.IndexByte("-._~+/", c) >= 0
}

// isQDText is RFC 9110 qdtext: HTAB, SP, VCHAR except '"' and '\', obs-text.
func isQDText(c byte) bool {
	return c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5b) || (c >= 0x5d && c <= 0x7e) || c >= 0x80
}

// isQuotedPairChar is what may follow a backslash: HTAB, SP, VCHAR, obs-text.
func isQuotedPairChar(c byte) bool {
	return c == '\t' || (c >= 0x20 && c <= 0x7e) || c >= 0x80
}

// bearerChallenge returns the first Bearer challenge.
func bearerChallenge(cs []Challenge) (Challenge, bool) {
	for _, c := range cs {
		if c.Scheme == "bearer" {
			return c, true
		}
	}
	return Challenge{}, false
}

// scopesOf splits a scope parameter (RFC 6749 §3.3) into a sorted set.
func scopesOf(s string) []string {
	return normScopes(strings.Fields(s))
}

// maxAgeOf parses an RFC 9470 max_age parameter: whole non-negative
// seconds. ok is false when absent; a malformed value is an error.
func maxAgeOf(s string) (time.Duration, bool, error) {
	if s == "" {
		return NoMaxAge, false, nil
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > 1<<31 {
		return NoMaxAge, false, fmt.Errorf("%w: max_age %q is not a non-negative integer", ErrMalformedChallenge, clip(s))
	}
	return time.Duration(n) * time.Second, true, nil
}
