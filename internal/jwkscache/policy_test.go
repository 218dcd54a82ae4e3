package jwkscache

import (
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"testing"
)

func TestKeySetURLValidation(t *testing.T) {
	t.Parallel()
	dev := Options{AllowInsecureLoopback: true}
	internal := Options{AllowedCIDRs: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}}
	tests := []struct {
		name string
		opts Options
		url  string
		want string // canonical form; "" means refused with ErrURL
	}{
		// Accepted in production.
		{"https", Options{}, "https://idp.example.com/.well-known/jwks.json", "https://idp.example.com/.well-known/jwks.json"},
		{"case and default port", Options{}, "HTTPS://IdP.Example.COM:443/jwks", "https://idp.example.com/jwks"},
		{"no path", Options{}, "https://idp.example.com", "https://idp.example.com/"},
		{"query kept", Options{}, "https://idp.example.com/jwks?tenant=a", "https://idp.example.com/jwks?tenant=a"},
		{"empty query dropped", Options{}, "https://idp.example.com/jwks?", "https://idp.example.com/jwks"},
		{"other port", Options{}, "https://idp.example.com:8443/jwks", "https://idp.example.com:8443/jwks"},
		{"public IPv4", Options{}, "https://8.8.8.8/jwks", "https://8.8.8.8/jwks"},
		{"public IPv6", Options{}, "https://[2606:4700::1111]/jwks", "https://[2606:4700::1111]/jwks"},
		{"public IPv6 with port", Options{}, "https://[2606:4700::1111]:8443/jwks", "https://[2606:4700::1111]:8443/jwks"},
		{"punycode host", Options{}, "https://xn--bcher-kva.example/jwks", "https://xn--bcher-kva.example/jwks"},

		// Refused in production.
		{"empty", Options{}, "", ""},
		{"http", Options{}, "http://idp.example.com/jwks", ""},
		{"http loopback without dev mode", Options{}, "http://127.0.0.1:8080/jwks", ""},
		{"ftp", Options{}, "ftp://idp.example.com/jwks", ""},
		{"javascript", Options{}, "javascript:alert(1)", ""},
		{"opaque", Options{}, "https:idp.example.com/jwks", ""},
		{"relative", Options{}, "/jwks", ""},
		{"scheme-relative", Options{}, "//idp.example.com/jwks", ""},
		{"no scheme", Options{}, "idp.example.com/jwks", ""},
		{"no host", Options{}, "https:///jwks", ""},
		{"user", Options{}, "https://user@idp.example.com/jwks", ""},
		{"user and password", Options{}, "https://user:pw@idp.example.com/jwks", ""},
		{"empty userinfo", Options{}, "https://@idp.example.com/jwks", ""},
		{"fragment", Options{}, "https://idp.example.com/jwks#x", ""},
		{"empty fragment", Options{}, "https://idp.example.com/jwks#", ""},
		{"backslash", Options{}, `https://idp.example.com\@evil.example/jwks`, ""},
		{"space", Options{}, "https://idp.example.com/jw ks", ""},
		{"tab", Options{}, "https://idp.example.com/\tjwks", ""},
		{"newline", Options{}, "https://idp.example.com/jwks\n", ""},
		{"bad escape", Options{}, "https://idp.example.com/%zz", ""},
		{"port 0", Options{}, "https://idp.example.com:0/jwks", ""},
		{"port too large", Options{}, "https://idp.example.com:65536/jwks", ""},
		{"port leading zero", Options{}, "https://idp.example.com:0443/jwks", ""},
		{"port not numeric", Options{}, "https://idp.example.com:https/jwks", ""},
		{"too long", Options{}, "https://idp.example.com/" + strings.Repeat("a", maxURLLen), ""},
		{"trailing dot", Options{}, "https://idp.example.com./jwks", ""},
		{"empty label", Options{}, "https://idp..example.com/jwks", ""},
		{"underscore", Options{}, "https://idp_1.example.com/jwks", ""},
		{"unicode host", Options{}, "https://bücher.example/jwks", ""},
		{"percent-encoded host", Options{}, "https://%69dp.example.com/jwks", ""},
		{"decimal IPv4", Options{}, "https://2130706433/jwks", ""},
		{"short IPv4", Options{}, "https://127.1/jwks", ""},
		{"hex IPv4", Options{}, "https://0x7f.0.0.1/jwks", ""},
		{"localhost", Options{}, "https://localhost/jwks", ""},
		{"localhost subdomain", Options{}, "https://idp.localhost/jwks", ""},
		{"loopback", Options{}, "https://127.0.0.1/jwks", ""},
		{"loopback IPv6", Options{}, "https://[::1]/jwks", ""},
		{"mapped loopback", Options{}, "https://[::ffff:127.0.0.1]/jwks", ""},
		{"RFC 1918 10/8", Options{}, "https://10.0.0.1/jwks", ""},
		{"RFC 1918 172.16/12", Options{}, "https://172.16.5.4/jwks", ""},
		{"RFC 1918 192.168/16", Options{}, "https://192.168.0.1/jwks", ""},
		{"metadata", Options{}, "https://169.254.169.254/latest/meta-data/", ""},
		{"CGNAT", Options{}, "https://100.64.1.1/jwks", ""},
		{"unspecified", Options{}, "https://0.0.0.0/jwks", ""},
		{"unspecified IPv6", Options{}, "https://[::]/jwks", ""},
		{"link-local IPv6", Options{}, "https://[fe80::1]/jwks", ""},
		{"link-local with zone", Options{}, "https://[fe80::1%25eth0]/jwks", ""},
		{"ULA", Options{}, "https://[fd00::1]/jwks", ""},
		{"multicast", Options{}, "https://239.1.1.1/jwks", ""},
		{"broadcast", Options{}, "https://255.255.255.255/jwks", ""},

		// Development mode: plain http to loopback only.
		{"dev http 127.0.0.1", dev, "http://127.0.0.1:8080/jwks", "http://127.0.0.1:8080/jwks"},
		{"dev http 127/8", dev, "http://127.0.0.2:8080/jwks", "http://127.0.0.2:8080/jwks"},
		{"dev http ::1", dev, "http://[::1]:8080/jwks", "http://[::1]:8080/jwks"},
		{"dev http localhost", dev, "http://localhost:8080/jwks", "http://localhost:8080/jwks"},
		{"dev http default port", dev, "http://localhost:80/jwks", "http://localhost/jwks"},
		{"dev https loopback", dev, "https://127.0.0.1:8443/jwks", "https://127.0.0.1:8443/jwks"},
		{"dev https public", dev, "https://idp.example.com/jwks", "https://idp.example.com/jwks"},
		{"dev http public", dev, "http://idp.example.com/jwks", ""},
		{"dev http private", dev, "http://10.0.0.1/jwks", ""},
		{"dev http localhost subdomain", dev, "http://idp.localhost/jwks", ""},
		{"dev https private", dev, "https://10.0.0.1/jwks", ""},
		{"dev https metadata", dev, "https://169.254.169.254/", ""},

		// Allowlisted internal ranges: https only, nothing else opened.
		{"allowlisted IPv4", internal, "https://10.1.2.3/jwks", "https://10.1.2.3/jwks"},
		{"allowlisted IPv6", internal, "https://[fd00::1]/jwks", "https://[fd00::1]/jwks"},
		{"allowlisted over http", internal, "http://10.1.2.3/jwks", ""},
		{"outside allowlist", internal, "https://192.168.0.1/jwks", ""},
		{"loopback not allowlisted", internal, "https://127.0.0.1/jwks", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := New(&tt.opts)
			if err != nil {
				t.Fatal(err)
			}
			got, err := validateURL(tt.url, c.allowInsecureLoopback, c.policy)
			if tt.want == "" {
				if !errors.Is(err, ErrURL) {
					t.Errorf("validateURL(%q) = %q, %v; want ErrURL", tt.url, got, err)
				}
				if _, err := c.KeySet(tt.url); !errors.Is(err, ErrURL) {
					t.Errorf("KeySet(%q) = %v; want ErrURL", tt.url, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("validateURL(%q) = %q, %v; want %q", tt.url, got, err, tt.want)
			}
			if again, err := validateURL(got, c.allowInsecureLoopback, c.policy); err != nil || again != got {
				t.Errorf("canonical form is not stable: %q -> %q, %v", got, again, err)
			}
		})
	}
}

func TestAddrPolicy(t *testing.T) {
	t.Parallel()
	prod := newAddrPolicy(false, false, nil)
	dev := newAddrPolicy(true, false, nil)
	plain := newAddrPolicy(true, true, nil)
	everything := newAddrPolicy(false, false, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")})
	tests := []struct {
		addr                         string
		prod, dev, plain, everything bool
	}{
		{"8.8.8.8", true, true, false, true},
		{"1.1.1.1", true, true, false, true},
		{"2606:4700::1111", true, true, false, true},
		{"64:ff9b::808:808", true, true, false, true}, // NAT64 of 8.8.8.8
		{"::ffff:8.8.8.8", true, true, false, true},

		{"127.0.0.1", false, true, true, true},
		{"127.255.255.254", false, true, true, true},
		{"::1", false, true, true, true},
		{"::ffff:127.0.0.1", false, true, true, true},
		{"10.0.0.1", false, false, false, true},
		{"172.16.0.1", false, false, false, true},
		{"172.31.255.255", false, false, false, true},
		{"172.32.0.1", true, true, false, true}, // just outside 172.16/12
		{"192.168.1.1", false, false, false, true},
		{"169.254.169.254", false, false, false, true},
		{"::ffff:169.254.169.254", false, false, false, true},
		{"64:ff9b::a9fe:a9fe", false, false, false, true},
		{"100.64.0.1", false, false, false, true},
		{"100.127.255.255", false, false, false, true},
		{"100.128.0.1", true, true, false, true},
		{"192.0.0.8", false, false, false, true},
		{"192.0.2.1", false, false, false, true},
		{"198.18.0.1", false, false, false, true},
		{"198.51.100.1", false, false, false, true},
		{"203.0.113.1", false, false, false, true},
		{"240.0.0.1", false, false, false, true},
		{"fe80::1", false, false, false, true},
		{"fc00::1", false, false, false, true},
		{"fd12:3456::1", false, false, false, true},
		{"fec0::1", false, false, false, true},
		{"::a00:1", false, false, false, true}, // IPv4-compatible 10.0.0.1
		{"100::1", false, false, false, true},
		{"64:ff9b:1::1", false, false, false, true},
		{"2001:db8::1", false, false, false, true},
		{"2001::1", false, false, false, true}, // Teredo
		{"2002:a00:1::1", false, false, false, true},
		{"3fff::1", false, false, false, true},

		// Never, whatever the configuration.
		{"0.0.0.0", false, false, false, false},
		{"0.1.2.3", false, false, false, false},
		{"::", false, false, false, false},
		{"224.0.0.1", false, false, false, false},
		{"239.255.255.250", false, false, false, false},
		{"255.255.255.255", false, false, false, false},
		{"ff02::1", false, false, false, false},
		{"::ffff:0.0.0.0", false, false, false, false},
		{"fe80::1%eth0", false, false, false, false},
	}
	for _, tt := range tests {
		a := netip.MustParseAddr(tt.addr)
		for _, p := range []struct {
			name   string
			policy *addrPolicy
			want   bool
		}{{"prod", prod, tt.prod}, {"dev", dev, tt.dev}, {"plain", plain, tt.plain}, {"everything", everything, tt.everything}} {
			err := p.policy.check(a)
			if got := err == nil; got != p.want {
				t.Errorf("%s policy, %s: allowed = %v, want %v", p.name, tt.addr, got, p.want)
			}
			if err != nil && !errors.Is(err, ErrAddressRefused) {
				t.Errorf("%s policy, %s: %v does not wrap ErrAddressRefused", p.name, tt.addr, err)
			}
		}
	}
}

func TestControlRefusesUnexpectedInput(t *testing.T) {
	t.Parallel()
	p := newAddrPolicy(true, false, nil)
	for _, tt := range []struct{ network, address string }{
		{"udp4", "8.8.8.8:53"},
		{"unix", "/tmp/sock"},
		{"tcp4", "8.8.8.8"},
		{"tcp4", "example.com:443"},
		{"tcp4", ""},
	} {
		if err := p.control(tt.network, tt.address, nil); !errors.Is(err, ErrAddressRefused) {
			t.Errorf("control(%q, %q) = %v, want ErrAddressRefused", tt.network, tt.address, err)
		}
	}
	if err := p.control("tcp6", "[2606:4700::1111]:443", nil); err != nil {
		t.Errorf("control(public IPv6) = %v", err)
	}
}

// FuzzValidateURL: whatever is accepted is https (or loopback http in dev
// mode), has no userinfo or fragment, and is a fixed point.
func FuzzValidateURL(f *testing.F) {
	for _, s := range []string{
		"https://idp.example.com/jwks", "http://127.0.0.1:8080/jwks", "https://user@idp.example.com/",
		"https://idp.example.com/#x", "https://[::1]/", "https://[fe80::1%25eth0]/", "https://10.0.0.1/",
		"https://2130706433/", "HTTPS://IDP.EXAMPLE.COM:443", "http://localhost/jwks?x=1", "https:opaque",
		`https://a\@b/`, "https://idp.example.com:0443/", "https://[::ffff:127.0.0.1]/",
	} {
		f.Add(s, false)
		f.Add(s, true)
	}
	f.Fuzz(func(t *testing.T, raw string, dev bool) {
		policy := newAddrPolicy(dev, false, nil)
		got, err := validateURL(raw, dev, policy)
		if err != nil {
			if !errors.Is(err, ErrURL) {
				t.Fatalf("error %v does not wrap ErrURL", err)
			}
			return
		}
		u, err := url.Parse(got)
		if err != nil {
			t.Fatalf("accepted %q, canonical %q does not parse: %v", raw, got, err)
		}
		if u.User != nil || u.Fragment != "" || strings.Contains(got, "#") {
			t.Fatalf("accepted %q with userinfo or fragment", raw)
		}
		switch u.Scheme {
		case "https":
		case "http":
			a, isIP := parseHostIP(u.Hostname())
			if !dev || !isLoopbackHost(u.Hostname(), a, isIP) {
				t.Fatalf("accepted plain http %q (dev=%v)", raw, dev)
			}
		default:
			t.Fatalf("accepted scheme %q in %q", u.Scheme, raw)
		}
		if a, err := netip.ParseAddr(u.Hostname()); err == nil {
			if err := policy.check(a); err != nil {
				t.Fatalf("accepted %q with refused address: %v", raw, err)
			}
		}
		if again, err := validateURL(got, dev, policy); err != nil || again != got {
			t.Fatalf("not a fixed point: %q -> %q -> %q, %v", raw, got, again, err)
		}
	})
}
