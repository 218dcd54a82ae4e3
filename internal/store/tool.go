package store

import (
	"fmt"
	"time"
)

// Tool policy limits, shared by the configuration and the authorization
// server that publishes a resource's tool -> scope map to its gateways.
const (
	// MaxToolNameLen is the MCP tool-name limit.
	MaxToolNameLen = 128
	// MaxToolMaxAge caps a tool's step-up max_age: a login older than a
	// day is not "recent" in any sense a step-up rule means.
	MaxToolMaxAge = 24 * time.Hour
)

// CheckToolName reports whether s is an MCP tool name: 1-128 ASCII
// letters, digits and "_ . - /". Names are compared exactly, so no case
// folding or normalisation can make two rules collide.
func CheckToolName(s string) error {
	if s == "" || len(s) > MaxToolNameLen {
		return fmt.Errorf("%w: a tool name must be 1-%d characters", ErrInvalid, MaxToolNameLen)
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !isAlnum(c) && c != '_' && c != '.' && c != '-' && c != '/' {
			return fmt.Errorf("%w: tool name %q may hold only ASCII letters, digits and _ . - /", ErrInvalid, truncate(s))
		}
	}
	return nil
}

// CheckACRValue reports whether s can be an acr value in a step-up rule:
// printable ASCII without spaces (it travels space-separated in the
// RFC 9470 acr_values challenge parameter), at most 256 bytes.
func CheckACRValue(s string) error {
	if s == "" || len(s) > maxACRLen || !printableASCII(s) || containsQuote(s) {
		return fmt.Errorf("%w: acr value %q must be 1-%d printable ASCII characters without spaces, quotes or backslashes", ErrInvalid, truncate(s), maxACRLen)
	}
	return nil
}

func containsQuote(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			return true
		}
	}
	return false
}
