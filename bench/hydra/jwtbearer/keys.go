package main

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"time"

	gojose "github.com/go-jose/go-jose/v4"

	"github.com/openxaa/xaa/internal/jose"
)

// signingKey is the assertion issuer's key: the private half signs, the
// public half (with kid = RFC 7638 thumbprint, alg, use=sig) is what the
// token endpoint is told to trust.
type signingKey struct {
	alg    gojose.SignatureAlgorithm
	kid    string
	key    crypto.Signer
	public gojose.JSONWebKey
}

// newSigningKey picks the algorithm from the key: ES256 for a P-256 ECDSA
// key, RS256 for an RSA key of at least 2048 bits.
func newSigningKey(key crypto.Signer) (*signingKey, error) {
	var alg gojose.SignatureAlgorithm
	switch k := key.Public().(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, errors.New("ECDSA key is not P-256 (ES256)")
		}
		alg = gojose.ES256
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key has %d bits, want at least 2048", k.N.BitLen())
		}
		alg = gojose.RS256
	default:
		return nil, fmt.Errorf("key type %T is not supported (want P-256 ECDSA or RSA)", k)
	}
	kid, err := jose.Thumbprint(key.Public())
	if err != nil {
		return nil, err
	}
	return &signingKey{
		alg:    alg,
		kid:    kid,
		key:    key,
		public: gojose.JSONWebKey{Key: key.Public(), KeyID: kid, Algorithm: string(alg), Use: "sig"},
	}, nil
}

// loadSigningKey reads a PKCS#8 PEM private key written by keygen.
func loadSigningKey(path string) (*signingKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("%s: no PKCS#8 \"PRIVATE KEY\" PEM block", path)
	}
	raw, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	signer, ok := raw.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("%s: key type %T cannot sign", path, raw)
	}
	k, err := newSigningKey(signer)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

// jwksJSON is the public JWK Set holding only this key.
func (k *signingKey) jwksJSON() ([]byte, error) {
	return json.Marshal(jose.PublicJWKS(k.public))
}

// keygenCmd writes a fresh key, 0600, and prints its public JWKS.
func keygenCmd(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("keygen", flag.ContinueOnError)
	out := fs.String("out", "", "where to write the PKCS#8 PEM private key (required; refuses to overwrite)")
	alg := fs.String("alg", "ES256", "ES256 (P-256) or RS256 (RSA 2048)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *out == "" {
		return errors.New("keygen: -out is required")
	}
	var (
		key crypto.Signer
		err error
	)
	switch *alg {
	case "ES256":
		key, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "RS256":
		key, err = rsa.GenerateKey(rand.Reader, 2048)
	default:
		return fmt.Errorf("keygen: -alg %q: want ES256 or RS256", *alg)
	}
	if err != nil {
		return err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	f, err := os.OpenFile(*out, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: "PRIVATE KEY", Bytes: der}); err != nil {
		_ = f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	k, err := newSigningKey(key)
	if err != nil {
		return err
	}
	jwks, err := k.jwksJSON()
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s\n", jwks)
	return err
}

// jwksCmd serves the key's public JWKS at every path until ctx ends. It
// is the assertion issuer's jwks_uri for servers that fetch keys (OpenXAA
// in dev_mode accepts an http jwks_uri on loopback).
func jwksCmd(ctx context.Context, args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("jwks", flag.ContinueOnError)
	keyPath := fs.String("key", "", "PKCS#8 PEM private key written by keygen (required)")
	addr := fs.String("addr", "127.0.0.1:18490", "listen address")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *keyPath == "" {
		return errors.New("jwks: -key is required")
	}
	k, err := loadSigningKey(*keyPath)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	set := jose.PublicJWKS(k.public)
	srv := &http.Server{
		Handler: jose.JWKSHandler(func(context.Context) (gojose.JSONWebKeySet, error) {
			return set, nil
		}, time.Hour),
		ReadHeaderTimeout: 5 * time.Second,
	}
	fmt.Fprintf(stdout, "serving JWKS (kid %s, %s) on http://%s/jwks.json\n", k.kid, k.alg, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return srv.Shutdown(shutdown)
	}
}
