package jwkscache

import (
	"errors"
	"math"
	"net/http"
	"testing"
	"time"
)

func TestTTL(t *testing.T) {
	t.Parallel()
	c, err := New(nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name         string
		cacheControl []string
		age          []string
		want         time.Duration
	}{
		{"none", nil, nil, DefaultTTL},
		{"unrelated directives", []string{"public, must-revalidate"}, nil, DefaultTTL},
		{"within bounds", []string{"max-age=3600"}, nil, time.Hour},
		{"below floor", []string{"max-age=1"}, nil, DefaultMinTTL},
		{"zero", []string{"max-age=0"}, nil, DefaultMinTTL},
		{"above ceiling", []string{"max-age=315360000"}, nil, DefaultMaxTTL},
		{"overflows int64", []string{"max-age=99999999999999999999999"}, nil, DefaultMaxTTL},
		{"quoted", []string{`max-age="3600"`}, nil, time.Hour},
		{"case and spaces", []string{"  Public ,MAX-AGE=3600 "}, nil, time.Hour},
		{"with other directives", []string{"public, max-age=3600, stale-while-revalidate=60"}, nil, time.Hour},
		{"across header lines", []string{"public", "max-age=3600"}, nil, time.Hour},
		{"s-maxage ignored", []string{"s-maxage=3600"}, nil, DefaultTTL},
		{"no-store", []string{"no-store"}, nil, DefaultMinTTL},
		{"no-cache", []string{"no-cache"}, nil, DefaultMinTTL},
		{"no-cache wins over max-age", []string{"max-age=3600, no-cache"}, nil, DefaultMinTTL},
		{"negative", []string{"max-age=-5"}, nil, DefaultMinTTL},
		{"not a number", []string{"max-age=abc"}, nil, DefaultMinTTL},
		{"fraction", []string{"max-age=3600.5"}, nil, DefaultMinTTL},
		{"no value", []string{"max-age"}, nil, DefaultMinTTL},
		{"empty value", []string{"max-age="}, nil, DefaultMinTTL},
		{"repeated", []string{"max-age=3600, max-age=7200"}, nil, DefaultMinTTL},
		{"age subtracted", []string{"max-age=3600"}, []string{"600"}, 50 * time.Minute},
		{"age beyond max-age", []string{"max-age=3600"}, []string{"7200"}, DefaultMinTTL},
		{"age malformed ignored", []string{"max-age=3600"}, []string{"x"}, time.Hour},
		{"age repeated ignored", []string{"max-age=3600"}, []string{"600", "700"}, time.Hour},
		{"age without max-age", nil, []string{"600"}, DefaultTTL},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := http.Header{}
			for _, v := range tt.cacheControl {
				h.Add("Cache-Control", v)
			}
			for _, v := range tt.age {
				h.Add("Age", v)
			}
			if got := c.ttl(h); got != tt.want {
				t.Errorf("ttl = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestDeltaSeconds(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"0", 0, true},
		{"300", 300, true},
		{"2147483647", math.MaxInt32, true},
		{"2147483648", math.MaxInt32 + 1, true},
		{"99999999999999999999", math.MaxInt32 + 1, true},
		{"", 0, false},
		{"+1", 0, false},
		{"-1", 0, false},
		{"1e3", 0, false},
		{" 1", 0, false},
	} {
		got, ok := deltaSeconds(tt.in)
		if got != tt.want || ok != tt.ok {
			t.Errorf("deltaSeconds(%q) = %d, %v; want %d, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}

func TestCheckContentType(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		values []string
		ok     bool
	}{
		{[]string{"application/json"}, true},
		{[]string{"application/jwk-set+json"}, true},
		{[]string{"application/json; charset=utf-8"}, true},
		{[]string{"Application/JSON; Charset=UTF-8"}, true},
		{[]string{"application/jwk-set+json;charset=\"utf-8\""}, true},
		{nil, false},
		{[]string{""}, false},
		{[]string{"application/json", "application/json"}, false},
		{[]string{"text/json"}, false},
		{[]string{"text/plain"}, false},
		{[]string{"application/jwk+json"}, false},
		{[]string{"application/json; charset=utf-16"}, false},
		{[]string{"application/json;"}, true}, // mime accepts a trailing ';'
		{[]string{"application/json; charset"}, false},
		{[]string{"application/json, text/html"}, false},
	} {
		err := checkContentType(tt.values)
		if (err == nil) != tt.ok {
			t.Errorf("checkContentType(%q) = %v, want ok=%v", tt.values, err, tt.ok)
		}
		if err != nil && !errors.Is(err, ErrContentType) {
			t.Errorf("checkContentType(%q) = %v, does not wrap ErrContentType", tt.values, err)
		}
	}
}

// FuzzTTL: whatever the headers say, the lifetime stays within the clamp.
func FuzzTTL(f *testing.F) {
	for _, s := range []string{"max-age=300", "no-store", "max-age=-1", `max-age="1"`, "max-age=99999999999999999999", ",,,", "max-age=1, max-age=2"} {
		f.Add(s, "")
		f.Add(s, "100")
	}
	c, err := New(nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, cacheControl, age string) {
		h := http.Header{}
		h.Set("Cache-Control", cacheControl)
		if age != "" {
			h.Set("Age", age)
		}
		if got := c.ttl(h); got < DefaultMinTTL || got > DefaultMaxTTL {
			t.Fatalf("ttl(%q, age %q) = %v, outside [%v, %v]", cacheControl, age, got, DefaultMinTTL, DefaultMaxTTL)
		}
	})
}
