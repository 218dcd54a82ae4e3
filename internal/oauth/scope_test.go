package oauth

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIntersect(t *testing.T) {
	t.Parallel()
	many := func(prefix string, n int) []string {
		s := make([]string, n)
		for i := range s {
			s[i] = fmt.Sprintf("%s%d", prefix, i)
		}
		return s
	}
	tests := []struct {
		name string
		sets [][]string
		want []string
	}{
		{name: "no sets", sets: nil, want: nil},
		{name: "one set drops duplicates, keeps order", sets: [][]string{{"b", "a", "b", "c", "a"}}, want: []string{"b", "a", "c"}},
		{name: "two sets keep the first set's order", sets: [][]string{{"c", "a", "b"}, {"a", "b", "c"}}, want: []string{"c", "a", "b"}},
		{name: "three sets", sets: [][]string{{"a", "b", "c", "d"}, {"d", "b", "a"}, {"b", "d", "x"}}, want: []string{"b", "d"}},
		{name: "empty set empties the result", sets: [][]string{{"a"}, {}}, want: nil},
		{name: "nothing in common", sets: [][]string{{"a"}, {"b"}}, want: nil},
		{name: "exact strings only: no case folding", sets: [][]string{{"Read", "read"}, {"read"}}, want: []string{"read"}},
		{name: "no prefix or wildcard matching", sets: [][]string{{"files", "files.read", "*"}, {"files.read.all", "file", "files.*"}}, want: nil},
		{name: "duplicates in later sets do not matter", sets: [][]string{{"a", "a"}, {"a", "a", "a"}}, want: []string{"a"}},
		{name: "large sets take the map path", sets: [][]string{append(many("s", 40), "s3"), many("s", 20)[5:]}, want: many("s", 20)[5:]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if diff := cmp.Diff(tt.want, Intersect(tt.sets...)); diff != "" {
				t.Errorf("Intersect (-want +got):\n%s", diff)
			}
		})
	}
}

func TestContains(t *testing.T) {
	t.Parallel()
	set := []string{"read", "write"}
	for s, want := range map[string]bool{"read": true, "write": true, "Read": false, "rea": false, "": false} {
		if got := Contains(set, s); got != want {
			t.Errorf("Contains(%q) = %v, want %v", s, got, want)
		}
	}
}

// FuzzScopeIntersect checks the scope-narrowing invariants (threat model
// §5, fuzz target 6): the result is a subset of every input, has no
// duplicates, is deterministic, keeps the first set's order, and misses
// nothing that is in all sets.
func FuzzScopeIntersect(f *testing.F) {
	f.Add("read write admin", "write read", "read")
	f.Add("a a b", "b a", "a b c")
	f.Add("", "a", "a")
	f.Add("x", "", "")
	f.Add(strings.Repeat("s ", 40), strings.Repeat("s s1 s2 ", 10), "s s1")
	f.Fuzz(func(t *testing.T, a, b, policy string) {
		if len(a)+len(b)+len(policy) > 4<<10 {
			return // the naive oracle below is quadratic; 4 KiB covers both code paths
		}
		split := func(s string) []string { return strings.Fields(s) }
		sa, sb, sp := split(a), split(b), split(policy)
		got := Intersect(sa, sb, sp)

		if again := Intersect(sa, sb, sp); !slices.Equal(got, again) {
			t.Fatalf("not deterministic: %q then %q", got, again)
		}
		seen := map[string]bool{}
		for _, s := range got {
			if seen[s] {
				t.Fatalf("duplicate %q in %q", s, got)
			}
			seen[s] = true
			for _, in := range [][]string{sa, sb, sp} {
				if !slices.Contains(in, s) {
					t.Fatalf("%q is in the result but not in %q", s, in)
				}
			}
		}
		// Order and completeness: walking a's first occurrences, exactly
		// those present in b and policy appear, in that order.
		var want []string
		for _, s := range sa {
			if !slices.Contains(want, s) && slices.Contains(sb, s) && slices.Contains(sp, s) {
				want = append(want, s)
			}
		}
		if !slices.Equal(got, want) {
			t.Fatalf("Intersect(%q, %q, %q) = %q, want %q", sa, sb, sp, got, want)
		}
	})
}
