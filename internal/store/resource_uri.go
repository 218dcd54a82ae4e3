package store

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrResourceURI means a string is not an acceptable resource identifier
// (RFC 8707) or issuer URL. The message says why.
var ErrResourceURI = errors.New("store: invalid resource URI")

// MaxResourceURILength bounds a resource URI; the form parser caps ordinary
// OAuth parameters at 2 KiB as well.
const MaxResourceURILength = 2048

// CanonicalResource returns the canonical form of a resource indicator
// (docs/decisions.md, "resource"; xaa-protocol.md §2.5), the one string
// under which the IdP and the authorization server register and compare a
// resource:
//
//   - absolute https URL; http only for a loopback host (localhost,
//     127.0.0.0/8, [::1]), for development;
//   - scheme and host lowercased, a default port (443, 80) dropped, a port
//     written without leading zeros;
//   - no userinfo, no query, no fragment: they are refused (even when
//     empty, as in "https://h/?"), never stripped, because a client that
//     sends them means something else than the registered resource;
//   - the path kept byte for byte, including a trailing slash or its
//     absence and the case of percent-escapes: "https://h" and "https://h/"
//     are different resources. Dot segments ("." and "..", also escaped)
//     and malformed escapes are refused rather than resolved.
//
// Hosts are ASCII DNS names (letter-digit-hyphen labels, IDNs in punycode,
// no trailing dot) or IP literals; a name whose last label is numeric must be
// a dotted-quad IPv4 address, so "127.1" or "0x7f.1" cannot alias an address.
// CanonicalResource(CanonicalResource(s)) == CanonicalResource(s).
func CanonicalResource(s string) (string, error) {
	if len(s) > MaxResourceURILength {
		return "", fmt.Errorf("%w: longer than %d bytes", ErrResourceURI, MaxResourceURILength)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= 0x20 || c >= 0x7f {
			return "", fmt.Errorf("%w: contains a space, a control or a non-ASCII character at byte %d", ErrResourceURI, i)
		}
	}
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrResourceURI)
	case strings.Contains(s, "#"):
		return "", fmt.Errorf("%w: must not have a fragment (the part after \"#\")", ErrResourceURI)
	case strings.Contains(s, "?"):
		return "", fmt.Errorf("%w: must not have a query (the part after \"?\")", ErrResourceURI)
	}
	scheme, rest, ok := strings.Cut(s, "://")
	if !ok {
		return "", fmt.Errorf("%w: must be an absolute URL such as https://mcp.example.com/mcp", ErrResourceURI)
	}
	scheme = strings.ToLower(scheme)
	if scheme != "https" && scheme != "http" {
		return "", fmt.Errorf("%w: scheme must be https (or http on loopback), got %q", ErrResourceURI, scheme)
	}
	authority, path := rest, ""
	if i := strings.IndexByte(rest, '/'); i >= 0 {
		authority, path = rest[:i], rest[i:]
	}
	if strings.Contains(authority, "@") {
		return "", fmt.Errorf("%w: must not contain a user name or password", ErrResourceURI)
	}
	host, port, err := splitAuthority(authority)
	if err != nil {
		return "", err
	}
	if scheme == "http" && !isLoopback(host) {
		return "", fmt.Errorf("%w: http is allowed only for loopback hosts; use https", ErrResourceURI)
	}
	if err := checkPath(path); err != nil {
		return "", err
	}
	var b strings.Builder
	b.Grow(len(s))
	b.WriteString(scheme)
	b.WriteString("://")
	b.WriteString(host)
	if port != 0 && !(scheme == "https" && port == 443) && !(scheme == "http" && port == 80) {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(port))
	}
	b.WriteString(path)
	return b.String(), nil
}

// splitAuthority returns the canonical host and the port (0 when absent or
// empty, which RFC 3986 §6.2.3 treats as the default).
func splitAuthority(a string) (host string, port int, err error) {
	rawPort := ""
	if strings.HasPrefix(a, "[") {
		end := strings.IndexByte(a, ']')
		if end < 0 {
			return "", 0, fmt.Errorf("%w: unterminated IPv6 literal", ErrResourceURI)
		}
		lit, after := a[1:end], a[end+1:]
		addr, perr := netip.ParseAddr(lit)
		if perr != nil || !addr.Is6() || addr.Zone() != "" || strings.Contains(lit, "%") {
			return "", 0, fmt.Errorf("%w: %q is not an IPv6 address (zones and IPvFuture are not accepted)", ErrResourceURI, lit)
		}
		host = "[" + addr.String() + "]"
		if after != "" {
			p, ok := strings.CutPrefix(after, ":")
			if !ok {
				return "", 0, fmt.Errorf("%w: unexpected characters after the IPv6 literal", ErrResourceURI)
			}
			rawPort = p
		}
	} else {
		h, p, hasPort := strings.Cut(a, ":")
		if hasPort {
			rawPort = p
		}
		if host, err = canonicalHost(h); err != nil {
			return "", 0, err
		}
	}
	if rawPort != "" {
		if len(rawPort) > 5 || strings.Trim(rawPort, "0123456789") != "" {
			return "", 0, fmt.Errorf("%w: port %q is not a number", ErrResourceURI, rawPort)
		}
		port, _ = strconv.Atoi(rawPort)
		if port < 1 || port > 65535 {
			return "", 0, fmt.Errorf("%w: port %s is out of range", ErrResourceURI, rawPort)
		}
	}
	return host, port, nil
}

// canonicalHost lowercases and checks a registered name or IPv4 address.
func canonicalHost(h string) (string, error) {
	if h == "" {
		return "", fmt.Errorf("%w: has no host", ErrResourceURI)
	}
	if len(h) > 253 {
		return "", fmt.Errorf("%w: host name longer than 253 bytes", ErrResourceURI)
	}
	h = strings.ToLower(h)
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" {
			return "", fmt.Errorf("%w: host %q has an empty label (or a trailing dot)", ErrResourceURI, h)
		}
		if len(l) > 63 {
			return "", fmt.Errorf("%w: host %q has a label longer than 63 bytes", ErrResourceURI, h)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return "", fmt.Errorf("%w: host %q has a label that starts or ends with \"-\"", ErrResourceURI, h)
		}
		for i := 0; i < len(l); i++ {
			if c := l[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", fmt.Errorf("%w: host %q may hold only letters, digits, \"-\" and \".\" (write IDNs in punycode)", ErrResourceURI, h)
			}
		}
	}
	if last := labels[len(labels)-1]; strings.Trim(last, "0123456789") == "" {
		// A numeric last label makes it an IPv4 address, in exactly one
		// spelling: netip refuses octal, hex, short and leading-zero forms.
		addr, err := netip.ParseAddr(h)
		if err != nil || !addr.Is4() {
			return "", fmt.Errorf("%w: host %q is neither a DNS name nor a dotted-quad IPv4 address", ErrResourceURI, h)
		}
	}
	return h, nil
}

// checkPath accepts an empty path or one made of RFC 3986 pchars and "/",
// with well-formed percent-escapes and no dot segments.
func checkPath(p string) error {
	if p == "" {
		return nil
	}
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("-._~!$&'()*+,;=:@/", c) >= 0:
		case c == '%':
			if i+2 >= len(p) || !isHex(p[i+1]) || !isHex(p[i+2]) {
				return fmt.Errorf("%w: malformed percent-escape in the path", ErrResourceURI)
			}
			i += 2
		default:
			return fmt.Errorf("%w: the path holds %q, which must be percent-encoded", ErrResourceURI, c)
		}
	}
	for seg := range strings.SplitSeq(p[1:], "/") {
		switch strings.ToLower(strings.ReplaceAll(strings.ReplaceAll(seg, "%2e", "."), "%2E", ".")) {
		case ".", "..":
			return fmt.Errorf("%w: the path has a dot segment (%q); write the resolved path", ErrResourceURI, seg)
		}
	}
	return nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// isLoopback reports whether a canonical host is localhost, in 127.0.0.0/8
// or ::1 (the rule config applies to issuers).
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	addr, err := netip.ParseAddr(strings.TrimSuffix(strings.TrimPrefix(host, "["), "]"))
	return err == nil && !addr.Is4In6() && addr.IsLoopback()
}
