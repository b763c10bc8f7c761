package webhooks

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
)

// stubResolver answers from a table and fails the test on any other name: no DNS query leaves
// the process.
type stubResolver struct {
	t     *testing.T
	names map[string][]string
}

func (r stubResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	addrs, ok := r.names[host]
	if !ok {
		return nil, errors.New("stub resolver: no such host " + host)
	}
	out := make([]netip.Addr, len(addrs))
	for i, a := range addrs {
		out[i] = netip.MustParseAddr(a)
	}
	return out, nil
}

func TestCheckURLRefuses(t *testing.T) {
	t.Parallel()
	p := NewPolicy(PolicyOptions{Resolver: stubResolver{t: t, names: map[string][]string{
		"public.example":   {"93.184.215.14"},
		"internal.example": {"93.184.215.14", "10.1.2.3"}, // one bad address is enough
		"meta.example":     {"169.254.169.254"},
	}}})
	tests := []struct{ url, inMessage string }{
		// IP literals in every encoding of loopback.
		{"http://127.0.0.1/", "127.0.0.1"},
		{"http://127.1/", "127.0.0.1"},
		{"http://127.0.1/", "127.0.0.1"},
		{"http://2130706433/", "127.0.0.1"},
		{"http://0x7f000001/", "127.0.0.1"},
		{"http://0x7f.0.0.1/", "127.0.0.1"},
		{"http://0177.0.0.1/", "127.0.0.1"},
		{"http://017700000001/", "127.0.0.1"},
		{"http://127.0.0.1./", "127.0.0.1"},
		{"http://[::1]/", "::1"},
		{"http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1"},
		{"http://[::ffff:7f00:1]/", "::ffff:127.0.0.1"},
		{"http://[0:0:0:0:0:ffff:127.0.0.1]/", "::ffff:127.0.0.1"},
		{"http://[64:ff9b::7f00:1]/", "64:ff9b::7f00:1"},   // NAT64 of 127.0.0.1
		{"http://[2002:7f00:1::]/", "2002:7f00:1::"},       // 6to4 of 127.0.0.1
		{"http://[2002:a9fe:a9fe::]/", "2002:a9fe:a9fe::"}, // 6to4 of 169.254.169.254
		{"http://0.0.0.0/", "0.0.0.0"},
		{"http://0/", "0.0.0.0"},
		{"http://169.254.169.254/latest/meta-data/", "169.254.169.254"},
		{"http://10.0.0.1/", "10.0.0.1"},
		{"http://172.16.5.4/", "172.16.5.4"},
		{"http://192.168.1.1/", "192.168.1.1"},
		{"http://100.64.0.1/", "100.64.0.1"}, // CGNAT
		{"http://224.0.0.1/", "224.0.0.1"},   // multicast
		{"http://255.255.255.255/", "255.255.255.255"},
		{"http://240.0.0.1/", "240.0.0.1"}, // reserved
		{"http://[fe80::1]/", "fe80::1"},
		{"http://[fc00::1]/", "fc00::1"},
		{"http://[ff02::1]/", "ff02::1"},
		{"http://localhost/", "127.0.0.1"},
		{"http://api.localhost/", "127.0.0.1"},
		// Names resolving to denied addresses (checked at registration, and again at dial).
		{"https://internal.example/", "10.1.2.3"},
		{"https://meta.example/", "169.254.169.254"},
		{"https://unknown.example/", "does not resolve"},
		// Malformed numeric hosts.
		{"http://256.1.1.1/", "not a valid one"},
		{"http://1.2.3.4.5/", "not a valid one"},
		{"http://0x1g/", "does not resolve"}, // not a number: a name
		{"http://[fe80::1%25eth0]/", "IPv6"},
		// Scheme, userinfo, port, shape.
		{"file:///etc/passwd", "scheme"},
		{"gopher://public.example:70/", "scheme"},
		{"ftp://public.example/", "scheme"},
		{"javascript:alert(1)", "scheme"},
		{"https://user:pw@public.example/", "user name"},
		{"https://user@public.example/", "user name"},
		{"https://public.example:22/", "port 22"},
		{"http://public.example:6379/", "port 6379"},
		{"https://public.example:0/", "port"},
		{"https:///path", "host"},
		{"public.example/path", "scheme"},
		{"", "1 to 2048"},
		{"https://bücher.example/", "punycode"},
		{"https://exa mple.com/", "parse"},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			t.Parallel()
			_, err := p.CheckURL(t.Context(), tt.url)
			if !errors.Is(err, ErrInvalidURL) {
				t.Fatalf("CheckURL(%q) = %v, want an error wrapping ErrInvalidURL", tt.url, err)
			}
			if !strings.Contains(err.Error(), tt.inMessage) {
				t.Fatalf("CheckURL(%q) = %q, want it to mention %q", tt.url, err, tt.inMessage)
			}
		})
	}
}

func TestCheckURLAccepts(t *testing.T) {
	t.Parallel()
	res := stubResolver{t: t, names: map[string][]string{"public.example": {"93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c"}}}
	strict := NewPolicy(PolicyOptions{Resolver: res})
	loopback := NewPolicy(PolicyOptions{Resolver: res, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, AllowPorts: []uint16{}})
	tests := []struct {
		p        *Policy
		url, out string
	}{
		{strict, "https://public.example/hooks?x=1", "https://public.example/hooks?x=1"},
		{strict, "HTTPS://public.example:8443/h#frag", "https://public.example:8443/h"},
		{strict, "http://public.example:8080/", "http://public.example:8080/"},
		{strict, "http://93.184.215.14/", "http://93.184.215.14/"},
		{strict, "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/", "http://[2606:2800:21f:cb07:6820:80da:af6b:8b2c]/"},
		{loopback, "http://127.0.0.1:12345/in", "http://127.0.0.1:12345/in"},
	}
	for _, tt := range tests {
		u, err := tt.p.CheckURL(t.Context(), tt.url)
		if err != nil || u.String() != tt.out {
			t.Fatalf("CheckURL(%q) = %v, %v; want %s", tt.url, u, err, tt.out)
		}
	}
	// localhost is 127.0.0.1 and ::1: with only 127.0.0.0/8 allowed, ::1 still refuses it.
	if _, err := loopback.CheckURL(t.Context(), "http://localhost:9/"); !errors.Is(err, ErrInvalidURL) || !strings.Contains(err.Error(), "::1") {
		t.Fatalf("CheckURL(localhost) = %v, want refused for ::1", err)
	}
}

// TestDenyList checks the dial-time hook on addresses, without any network traffic.
func TestDenyList(t *testing.T) {
	t.Parallel()
	strict := NewPolicy(PolicyOptions{AllowPorts: []uint16{}})
	allow := NewPolicy(PolicyOptions{AllowPorts: []uint16{}, AllowCIDRs: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	ported := NewPolicy(PolicyOptions{})
	tests := []struct {
		p                *Policy
		network, address string
		allowed          bool
	}{
		{strict, "tcp4", "127.0.0.1:80", false},
		{strict, "tcp4", "127.255.0.9:80", false},
		{strict, "tcp6", "[::1]:80", false},
		{strict, "tcp6", "[::ffff:127.0.0.1]:80", false},
		{strict, "tcp6", "[::ffff:10.0.0.1]:80", false},
		{strict, "tcp6", "[64:ff9b::a00:1]:80", false}, // NAT64 of 10.0.0.1
		{strict, "tcp6", "[2002:c0a8:101::1]:80", false},
		{strict, "tcp4", "10.20.30.40:443", false},
		{strict, "tcp4", "172.31.255.255:443", false},
		{strict, "tcp4", "192.168.0.1:443", false},
		{strict, "tcp4", "169.254.169.254:80", false},
		{strict, "tcp4", "100.100.100.100:80", false},
		{strict, "tcp4", "0.0.0.0:80", false},
		{strict, "tcp4", "239.255.255.250:80", false},
		{strict, "tcp4", "198.18.0.1:80", false}, // benchmarking
		{strict, "tcp6", "[fd00::1]:80", false},
		{strict, "tcp6", "[fe80::1]:80", false},
		{strict, "udp4", "93.184.215.14:80", false}, // only TCP
		{strict, "tcp4", "93.184.215.14:80", true},
		{strict, "tcp6", "[2606:2800:21f:cb07:6820:80da:af6b:8b2c]:443", true},
		{allow, "tcp4", "127.0.0.1:5555", true},
		{allow, "tcp4", "10.0.0.1:80", false},
		{allow, "tcp6", "[::1]:80", false},
		{ported, "tcp4", "93.184.215.14:22", false},
		{ported, "tcp4", "93.184.215.14:8443", true},
	}
	for _, tt := range tests {
		err := tt.p.Control(tt.network, tt.address, nil)
		if tt.allowed && err != nil || !tt.allowed && !errors.Is(err, ErrBlocked) {
			t.Errorf("Control(%s, %s) = %v, allowed %v", tt.network, tt.address, err, tt.allowed)
		}
	}
}

func TestParsePortsAndCIDRs(t *testing.T) {
	t.Parallel()
	if p, err := ParsePorts("*"); err != nil || p == nil || len(p) != 0 {
		t.Fatalf("ParsePorts(*) = %v, %v; want empty non-nil", p, err)
	}
	if p, err := ParsePorts(" 80, 8443 "); err != nil || len(p) != 2 || p[1] != 8443 {
		t.Fatalf("ParsePorts = %v, %v", p, err)
	}
	for _, bad := range []string{"", "0", "65536", "http", "80,x"} {
		if _, err := ParsePorts(bad); err == nil {
			t.Errorf("ParsePorts(%q) accepted", bad)
		}
	}
	if c, err := ParseCIDRs([]string{"127.0.0.0/8", " ::1 ", "10.1.2.3", ""}); err != nil || len(c) != 3 || c[1].Bits() != 128 || c[2].Bits() != 32 {
		t.Fatalf("ParseCIDRs = %v, %v", c, err)
	}
	if _, err := ParseCIDRs([]string{"10.0.0.0/33"}); err == nil {
		t.Fatal("ParseCIDRs accepted /33")
	}
}
