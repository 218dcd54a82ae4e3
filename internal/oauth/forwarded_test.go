package oauth

import (
	"net/http"
	"net/netip"
	"testing"
)

func TestForwardedAddress(t *testing.T) {
	t.Parallel()
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name   string
		peer   string
		xff    []string
		want   string
		noList bool // ForwardedAddress(nil)
	}{
		{name: "untrusted peer ignores header", peer: "203.0.113.9:5000", xff: []string{"198.51.100.1"}, want: "203.0.113.9"},
		{name: "trusted proxy, one hop", peer: "10.1.2.3:5000", xff: []string{"198.51.100.1"}, want: "198.51.100.1"},
		{name: "client-written spoof left of the real hop", peer: "10.1.2.3:5000", xff: []string{"1.2.3.4, 198.51.100.1"}, want: "198.51.100.1"},
		{name: "chain of trusted proxies", peer: "10.1.2.3:5000", xff: []string{"198.51.100.1, 10.9.9.9"}, want: "198.51.100.1"},
		{name: "several header lines", peer: "10.1.2.3:5000", xff: []string{"198.51.100.1", "10.9.9.9"}, want: "198.51.100.1"},
		{name: "garbage hop stops at last good", peer: "10.1.2.3:5000", xff: []string{"not-an-ip, 10.9.9.9"}, want: "10.9.9.9"},
		{name: "no header: the proxy itself", peer: "10.1.2.3:5000", want: "10.1.2.3"},
		{name: "IPv6 client by /64", peer: "[fd00::1]:5000", xff: []string{"2001:db8:1:2:3:4:5:6"}, want: "2001:db8:1:2::/64"},
		{name: "no trusted proxies: peer only", peer: "10.1.2.3:5000", xff: []string{"198.51.100.1"}, want: "10.1.2.3", noList: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := &http.Request{RemoteAddr: tt.peer, Header: http.Header{}}
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			f := ForwardedAddress(trusted)
			if tt.noList {
				f = ForwardedAddress(nil)
			}
			if got := f(r); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
