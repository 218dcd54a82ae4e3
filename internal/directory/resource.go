package directory

import "github.com/openxaa/xaa/internal/store"

// CanonicalResource returns the canonical form of a resource indicator, the
// only form under which resources are stored and compared. The rules live
// in store.CanonicalResource, where store.Resource.Validate enforces them
// for every writer and the authorization server can use them without
// importing the IdP's directory; see there for the exact rules.
func CanonicalResource(s string) (string, error) { return store.CanonicalResource(s) }
