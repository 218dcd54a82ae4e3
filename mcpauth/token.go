package mcpauth

import (
	"context"
	"errors"
	"net/http"
	"time"

	"github.com/modelcontextprotocol/go-sdk/auth"
)

// TokenInfo is what a verified access token says about the caller. Times
// are UTC; AuthTime is zero when the token carries no auth_time.
type TokenInfo struct {
	Issuer, Subject, ClientID, JTI, Audience, ACR string
	Scopes, AMR                                   []string
	AuthTime, IssuedAt, Expiration                time.Time
}

// HasScope reports whether the token grants scope, by exact string
// comparison (scopes have no hierarchy here: the AS expands any).
func (t *TokenInfo) HasScope(scope string) bool {
	for _, s := range t.Scopes {
		if s == scope {
			return true
		}
	}
	return false
}

// ErrInvalidToken is wrapped by every verification failure that is the
// token's fault. Any other error from a Verifier (keys or introspection
// endpoint unreachable) is a dependency failure: the middleware answers 503
// and never lets the request through.
var ErrInvalidToken = errors.New("mcpauth: invalid token")

// Verifier checks a bearer token presented to this resource server.
type Verifier interface {
	Verify(ctx context.Context, token string) (*TokenInfo, error)
}

// Revocations is consulted after a token verifies; true means the token is
// refused as invalid_token. Implementations must be fast and must not
// block: the gateway answers from a list it polls.
type Revocations interface {
	Revoked(t *TokenInfo) bool
}

// invalidToken is the error verifiers return for a bad token. description
// is a fixed sentence safe for a WWW-Authenticate header; cause may hold
// attacker-controlled text and goes to logs only.
type invalidToken struct {
	description string
	cause       error
}

func (e *invalidToken) Error() string {
	if e.cause == nil {
		return ErrInvalidToken.Error() + ": " + e.description
	}
	return ErrInvalidToken.Error() + ": " + e.description + ": " + e.cause.Error()
}

func (e *invalidToken) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrInvalidToken}
	}
	return []error{ErrInvalidToken, e.cause}
}

func invalid(description string, cause error) error {
	return &invalidToken{description: description, cause: cause}
}

// describeInvalid returns the error_description for a verification error:
// the sentence of an invalidToken, or a generic one for errors of other
// Verifier implementations, whose text is never echoed to the client.
func describeInvalid(err error) string {
	var it *invalidToken
	if errors.As(err, &it) {
		return it.description
	}
	return "the access token is invalid"
}

type tokenInfoKey struct{}

// TokenInfoFromContext returns the verified token of the request the
// middleware passed on.
func TokenInfoFromContext(ctx context.Context) (*TokenInfo, bool) {
	ti, ok := ctx.Value(tokenInfoKey{}).(*TokenInfo)
	return ti, ok && ti != nil
}

func withTokenInfo(ctx context.Context, ti *TokenInfo) context.Context {
	return context.WithValue(ctx, tokenInfoKey{}, ti)
}

// SDKVerifier adapts v to the go-sdk's auth.RequireBearerToken, for servers
// that want only token verification without per-tool policy. UserID is the
// token's subject, so the go-sdk binds sessions to it; Extra holds
// "iss", "client_id", "jti", "acr" and "token_info" (the *TokenInfo).
// Invalid tokens unwrap to auth.ErrInvalidToken (401); other failures are
// passed through (the go-sdk answers 500).
func SDKVerifier(v Verifier) auth.TokenVerifier {
	return func(ctx context.Context, token string, _ *http.Request) (*auth.TokenInfo, error) {
		ti, err := v.Verify(ctx, token)
		if err != nil {
			if errors.Is(err, ErrInvalidToken) {
				return nil, errors.Join(auth.ErrInvalidToken, err)
			}
			return nil, err
		}
		return sdkTokenInfo(ti), nil
	}
}

func sdkTokenInfo(ti *TokenInfo) *auth.TokenInfo {
	return &auth.TokenInfo{
		Scopes:     append([]string(nil), ti.Scopes...),
		Expiration: ti.Expiration,
		UserID:     ti.Subject,
		Extra: map[string]any{
			"iss":        ti.Issuer,
			"client_id":  ti.ClientID,
			"jti":        ti.JTI,
			"acr":        ti.ACR,
			"token_info": ti,
		},
	}
}
