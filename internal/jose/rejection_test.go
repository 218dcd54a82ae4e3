package jose

import (
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestIsRejection(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	valid := f.es.token(t, TypeIDJAG, idJAGClaims())
	outage := errors.New("database is down")
	verify := func(raw string, issuers TrustedIssuers) error {
		_, err := Verify(t.Context(), raw, IDJAGProfile(), issuers, expectFor(IDJAGProfile()))
		return err
	}

	type row struct {
		name string
		err  error
		want bool
	}
	var tests []row
	for _, s := range sentinels() {
		tests = append(tests,
			row{s.Error(), s, true},
			row{"wrapped " + s.Error(), fmt.Errorf("oauth: verify: %w", fmt.Errorf("jose: key set: %w", s)), true},
			row{"rejection of " + s.Error(), rejectf(s, "detail %d", 1), true},
		)
	}
	tests = append(tests,
		row{"nil", nil, false},
		row{"ErrMisconfigured", ErrMisconfigured, false},
		row{"wrapped ErrMisconfigured", fmt.Errorf("x: %w", ErrMisconfigured), false},
		row{"ErrInvalidKeySet", ErrInvalidKeySet, false},
		row{"plain error", outage, false},
		row{"error with a sentinel's text but not wrapping it", errors.New(ErrSignature.Error()), false},
		row{"Verify: malformed", verify("not-a-jwt", f.issuers), true},
		row{"Verify: key of another issuer", verify(f.esB.token(t, TypeIDJAG, idJAGClaims()), f.issuers), true},
		row{"Verify: issuer outage", verify(valid, failingIssuers{outage}), false},
		row{"Verify: key set outage", verify(valid, SingleIssuer{Issuer: issuerA, Keys: failingKeys{outage}}), false},
		row{"Verify: misconfigured", verify(valid, nil), false},
	)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsRejection(tt.err); got != tt.want {
				t.Errorf("IsRejection(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

// TestIsRejectionCoversErrorsGo keeps IsRejection and the tests' sentinels()
// in step with errors.go: every Err in its first var block is a rejection,
// every Err in the second is not.
func TestIsRejectionCoversErrorsGo(t *testing.T) {
	t.Parallel()
	file, err := parser.ParseFile(token.NewFileSet(), "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var blocks [][]string
	for _, d := range file.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.VAR {
			continue
		}
		var block []string
		for _, spec := range g.Specs {
			for _, n := range spec.(*ast.ValueSpec).Names {
				block = append(block, n.Name)
			}
		}
		slices.Sort(block)
		blocks = append(blocks, block)
	}
	names := sentinelNames()
	if len(names) != len(sentinels()) {
		t.Fatalf("sentinelNames has %d entries, sentinels() %d", len(names), len(sentinels()))
	}
	for _, s := range sentinels() {
		if !slices.Contains(slices.Collect(maps.Values(names)), s) {
			t.Fatalf("sentinelNames lacks %v", s)
		}
	}
	names["ErrMisconfigured"], names["ErrInvalidKeySet"] = ErrMisconfigured, ErrInvalidKeySet
	want := [][]string{slices.Sorted(maps.Keys(sentinelNames())), {"ErrInvalidKeySet", "ErrMisconfigured"}}
	if diff := cmp.Diff(want, blocks); diff != "" {
		t.Fatalf("var blocks of errors.go (-sentinelNames +errors.go):\n%s", diff)
	}
	for i, block := range blocks {
		for _, name := range block {
			if got := IsRejection(names[name]); got != (i == 0) {
				t.Errorf("IsRejection(%s) = %v, want %v", name, got, i == 0)
			}
		}
	}
}

// sentinelNames maps the Go name of each rejection sentinel to its value.
func sentinelNames() map[string]error {
	return map[string]error{
		"ErrTooLarge": ErrTooLarge, "ErrMalformed": ErrMalformed, "ErrEncrypted": ErrEncrypted,
		"ErrDuplicateMember": ErrDuplicateMember, "ErrForbiddenHeader": ErrForbiddenHeader,
		"ErrAlgorithm": ErrAlgorithm, "ErrType": ErrType, "ErrUnknownIssuer": ErrUnknownIssuer,
		"ErrUnknownKey": ErrUnknownKey, "ErrSignature": ErrSignature, "ErrMissingClaim": ErrMissingClaim,
		"ErrInvalidClaim": ErrInvalidClaim, "ErrIssuer": ErrIssuer, "ErrAudience": ErrAudience,
		"ErrExpired": ErrExpired, "ErrNotYetValid": ErrNotYetValid, "ErrIssuedInFuture": ErrIssuedInFuture,
		"ErrLifetimeTooLong": ErrLifetimeTooLong,
	}
}
