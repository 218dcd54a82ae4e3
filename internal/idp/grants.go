package idp

import "time"

// newGrants is the token endpoint's dispatch table.
func (s *Server) newGrants() map[string]grant {
	return map[string]grant{
		grantAuthorizationCode: grantFunc(s.codeGrant),
		grantRefreshToken:      grantFunc(s.refreshGrant),
		grantTokenExchange:     grantFunc(s.exchangeGrant),
	}
}

// subject is the user on whose behalf a token is requested, as proven by a
// subject token (an ID token or a refresh token this IdP issued).
type subject struct {
	UserID    string
	ClientID  string // the requesting app the subject token was issued to
	SessionID string
	// IDTokenJTI is the jti of an ID-token subject ("" for a refresh
	// token, or an ID token without one): the key of its ledger row.
	IDTokenJTI string
	AuthTime   time.Time
	ACR        string
	AMR        []string
	// Refresh is set when the subject token is a refresh token: the
	// ID-JAG may not carry more scope or outlive it.
	Refresh *refreshSubject
}

// refreshSubject is what a refresh token contributes to a decision.
type refreshSubject struct {
	Scopes    []string
	ExpiresAt time.Time
	FamilyID  string
}
