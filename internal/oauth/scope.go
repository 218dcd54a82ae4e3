package oauth

import "slices"

// smallSet is the size up to which scope arithmetic scans slices instead of
// building maps: real scope lists have a handful of entries, and a linear
// scan of those beats hashing. Larger inputs (a 1 KiB scope parameter holds
// up to 512 tokens) get maps so the work stays linear.
const smallSet = 16

// Intersect returns the scopes present in every set, compared as exact
// strings (no case folding, no prefix or wildcard rules). The result keeps
// the order of the first set and has no duplicates. It is nil when there
// are no sets or nothing is common: scope only ever narrows
// (docs/decisions.md "Scopes").
func Intersect(sets ...[]string) []string {
	if len(sets) == 0 {
		return nil
	}
	in := make([]func(string) bool, 0, len(sets)-1)
	for _, s := range sets[1:] {
		in = append(in, membership(s))
	}
	var out []string
	var seen map[string]struct{} // used once the first set is large
	if len(sets[0]) > smallSet {
		seen = make(map[string]struct{}, len(sets[0]))
	}
next:
	for _, scope := range sets[0] {
		if seen != nil {
			if _, dup := seen[scope]; dup {
				continue
			}
			seen[scope] = struct{}{}
		} else if slices.Contains(out, scope) {
			continue
		}
		for _, member := range in {
			if !member(scope) {
				continue next
			}
		}
		out = append(out, scope)
	}
	return out
}

// Contains reports whether set holds scope exactly.
func Contains(set []string, scope string) bool { return slices.Contains(set, scope) }

// membership returns a predicate for "s is in set".
func membership(set []string) func(string) bool {
	if len(set) <= smallSet {
		return func(s string) bool { return slices.Contains(set, s) }
	}
	m := make(map[string]struct{}, len(set))
	for _, s := range set {
		m[s] = struct{}{}
	}
	return func(s string) bool { _, ok := m[s]; return ok }
}
