// Package directory is the IdP's directory logic above the store: password
// hashing (argon2id, legacy bcrypt), TOTP second factors sealed at rest,
// canonical resource URIs, and the seed file that describes a whole
// organisation (users, groups, requesting apps, authorization servers,
// resources and connections) and applies it in one transaction.
//
// It holds no HTTP: the login pages, policy and token exchange build on it.
package directory
