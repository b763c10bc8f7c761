package auth

import (
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"testing"
	"time"
)

func TestParsePublicKeyPEM(t *testing.T) {
	t.Parallel()
	k := testKeys()
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "issuer"}, NotAfter: time.Now().Add(time.Hour)}
	certDER, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.ec.Public(), k.ec)
	if err != nil {
		t.Fatal(err)
	}
	ecPriv, _ := x509.MarshalECPrivateKey(k.ec)
	tests := []struct {
		name string
		pem  []byte
		alg  string // "" = refused
	}{
		{"RSA PKIX", pkixPEM(t, &k.rsa.PublicKey), "RS256"},
		{"RSA PKCS1", pemOf(t, "RSA PUBLIC KEY", x509.MarshalPKCS1PublicKey(&k.rsa.PublicKey)), "RS256"},
		{"EC PKIX", pkixPEM(t, &k.ec.PublicKey), "ES256"},
		{"Ed25519 PKIX", pkixPEM(t, k.ed.Public()), "EdDSA"},
		{"certificate", pemOf(t, "CERTIFICATE", certDER), "ES256"},
		{"EC private key", pemOf(t, "EC PRIVATE KEY", ecPriv), ""},
		{"RSA private key", pemOf(t, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(k.rsa)), ""},
		{"not PEM", []byte("hello"), ""},
		{"corrupt body", pemOf(t, "PUBLIC KEY", []byte("garbage")), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := ParsePublicKeyPEM(tt.pem)
			if tt.alg == "" {
				if err == nil {
					t.Fatalf("accepted: %T", key)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if v := mustVerifier(t, Config{PublicKey: key}); v.Algorithm() != tt.alg {
				t.Fatalf("algorithm %s, want %s", v.Algorithm(), tt.alg)
			}
		})
	}
}
