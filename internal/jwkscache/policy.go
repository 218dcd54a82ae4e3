package jwkscache

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"syscall"
)

// maxURLLen bounds a configured JWKS URL; real ones are well under 200 bytes.
const maxURLLen = 2048

// addrPolicy decides which IP addresses a fetch may connect to. It is
// applied to literal hosts at configuration time and to every resolved
// address at dial time, so DNS rebinding gains nothing.
type addrPolicy struct {
	// allowLoopback permits 127.0.0.0/8 and ::1 (AllowInsecureLoopback).
	allowLoopback bool
	// loopbackOnly refuses everything but loopback: the plain-http dev
	// transport must never carry keys across a network.
	loopbackOnly bool
	// allowed are operator-approved ranges that are otherwise refused.
	allowed []netip.Prefix
	// never are refused even when allowed covers them: no JWKS server
	// lives at "this network", multicast or broadcast addresses, and
	// Linux treats a connect to 0.0.0.0 as a connect to loopback.
	never []netip.Prefix
	// denied are the IPv4 ranges IANA marks as not globally reachable.
	denied4 []netip.Prefix
	// denied6 are the non-global ranges inside 2000::/3.
	denied6 []netip.Prefix
	// global6 is the only IPv6 range treated as public by default.
	global6 netip.Prefix
	// nat64 is the well-known NAT64 prefix (RFC 6052); the embedded IPv4
	// address is checked instead, so 64:ff9b::a9fe:a9fe is the metadata
	// service.
	nat64 netip.Prefix
}

func newAddrPolicy(allowLoopback, loopbackOnly bool, allowed []netip.Prefix) *addrPolicy {
	p := func(s string) netip.Prefix { return netip.MustParsePrefix(s) }
	return &addrPolicy{
		allowLoopback: allowLoopback,
		loopbackOnly:  loopbackOnly,
		allowed:       allowed,
		never: []netip.Prefix{
			p("0.0.0.0/8"),   // "this network", includes unspecified
			p("224.0.0.0/4"), // multicast
			p("255.255.255.255/32"),
			p("::/128"),
			p("ff00::/8"), // multicast
		},
		denied4: []netip.Prefix{
			p("10.0.0.0/8"),      // RFC 1918
			p("100.64.0.0/10"),   // CGNAT, RFC 6598
			p("127.0.0.0/8"),     // loopback
			p("169.254.0.0/16"),  // link-local, cloud metadata
			p("172.16.0.0/12"),   // RFC 1918
			p("192.0.0.0/24"),    // IETF protocol assignments
			p("192.0.2.0/24"),    // TEST-NET-1
			p("192.88.99.0/24"),  // 6to4 relay anycast
			p("192.168.0.0/16"),  // RFC 1918
			p("198.18.0.0/15"),   // benchmarking
			p("198.51.100.0/24"), // TEST-NET-2
			p("203.0.113.0/24"),  // TEST-NET-3
			p("240.0.0.0/4"),     // reserved, includes broadcast
		},
		denied6: []netip.Prefix{
			p("2001::/23"),     // IETF protocol assignments, Teredo
			p("2001:db8::/32"), // documentation
			p("2002::/16"),     // 6to4 embeds arbitrary IPv4
			p("3fff::/20"),     // documentation
		},
		global6: p("2000::/3"),
		nat64:   p("64:ff9b::/96"),
	}
}

// check returns nil if a fetch may connect to a, or an error wrapping
// ErrAddressRefused.
func (p *addrPolicy) check(a netip.Addr) error {
	if !p.permitted(a) {
		return fmt.Errorf("%w: %s", ErrAddressRefused, a)
	}
	return nil
}

func (p *addrPolicy) permitted(a netip.Addr) bool {
	if !a.IsValid() || a.Zone() != "" {
		return false // zones only qualify link-local addresses
	}
	a = a.Unmap()
	if p.loopbackOnly {
		return a.IsLoopback()
	}
	for _, n := range p.never {
		if n.Contains(a) {
			return false
		}
	}
	if a.IsLoopback() && p.allowLoopback {
		return true
	}
	for _, n := range p.allowed {
		if n.Contains(a) {
			return true
		}
	}
	if a.Is4() {
		for _, n := range p.denied4 {
			if n.Contains(a) {
				return false
			}
		}
		return true
	}
	if p.nat64.Contains(a) {
		b := a.As16()
		return p.permitted(netip.AddrFrom4([4]byte(b[12:])))
	}
	if !p.global6.Contains(a) {
		return false // loopback, ULA, link-local, site-local, IPv4-compatible, ...
	}
	for _, n := range p.denied6 {
		if n.Contains(a) {
			return false
		}
	}
	return true
}

// control is the net.Dialer Control hook. It runs after name resolution
// and before connect, once per candidate address.
func (p *addrPolicy) control(network, address string, _ syscall.RawConn) error {
	if network != "tcp4" && network != "tcp6" {
		return fmt.Errorf("%w: network %q", ErrAddressRefused, network)
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: %q", ErrAddressRefused, address)
	}
	return p.check(ap.Addr())
}

// validateURL checks a configured JWKS URL and returns it in the canonical
// form used as the cache key. Literal IP hosts are checked against the dial
// policy here already, so a mistake shows up at configuration time.
func validateURL(raw string, allowInsecureLoopback bool, policy *addrPolicy) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %s", ErrURL, why)
	}
	if raw == "" {
		return bad("empty")
	}
	if len(raw) > maxURLLen {
		return bad("too long")
	}
	if strings.ContainsAny(raw, "#\\") {
		return bad("contains a fragment or a backslash")
	}
	for _, r := range raw {
		if r <= ' ' || r == 0x7f {
			return bad("contains whitespace or a control character")
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		return bad("does not parse")
	}
	if u.Opaque != "" {
		return bad("not a hierarchical URL")
	}
	if u.User != nil {
		return bad("userinfo is not allowed")
	}
	scheme := strings.ToLower(u.Scheme)
	host := strings.ToLower(u.Hostname())
	if host == "" {
		return bad("missing host")
	}
	port := u.Port()
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 || port[0] == '0' {
			return bad("invalid port")
		}
	}
	addr, isIP := parseHostIP(host)
	if isIP && addr.Zone() != "" {
		return bad("IPv6 zones are not allowed")
	}
	if !isIP && !validHostname(host) {
		return bad("host is neither an IP address nor a DNS name")
	}
	switch scheme {
	case "https":
		if port == "443" {
			port = ""
		}
	case "http":
		if !allowInsecureLoopback {
			return bad("must use https")
		}
		if !isLoopbackHost(host, addr, isIP) {
			return bad("plain http is only allowed to a loopback host")
		}
		if port == "80" {
			port = ""
		}
	default:
		return bad("must use https")
	}
	switch {
	case isIP:
		if err := policy.check(addr); err != nil {
			return bad(err.Error())
		}
	case host == "localhost" || strings.HasSuffix(host, ".localhost"):
		// RFC 6761: these names are loopback, whatever DNS says.
		if err := policy.check(netip.AddrFrom4([4]byte{127, 0, 0, 1})); err != nil {
			return bad(err.Error())
		}
	}
	u.Scheme = scheme
	u.Host = host
	if strings.Contains(host, ":") {
		u.Host = "[" + host + "]"
	}
	if port != "" {
		u.Host = net.JoinHostPort(host, port)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	u.ForceQuery = false
	return u.String(), nil
}

func parseHostIP(host string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(host)
	return a, err == nil
}

// validHostname accepts lowercase letter-digit-hyphen labels whose last
// label starts with a letter. That keeps out IDN and percent-encoded hosts,
// a trailing dot, and forms such as "2130706433" or "0x7f.1" that some
// resolvers read as IPv4 addresses.
func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	labels := strings.Split(h, ".")
	for _, l := range labels {
		if l == "" || len(l) > 63 || l[0] == '-' || l[len(l)-1] == '-' {
			return false
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
				return false
			}
		}
	}
	last := labels[len(labels)-1]
	return last[0] >= 'a' && last[0] <= 'z'
}

func isLoopbackHost(host string, a netip.Addr, isIP bool) bool {
	if isIP {
		return a.Unmap().IsLoopback()
	}
	return host == "localhost"
}

// redactURL drops the query from u for logs: it is the one part of a JWKS
// URL that might carry something secret-like.
func redactURL(u string) string {
	if i := strings.IndexByte(u, '?'); i >= 0 {
		return u[:i] + "?…"
	}
	return u
}
