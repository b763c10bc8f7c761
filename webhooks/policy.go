// Package webhooks delivers the event log to registered HTTP endpoints: the registration policy
// and SSRF-safe client (policy.go, client.go), Standard Webhooks signing (signer.go), the
// management service (service.go) and the delivery engine (dispatcher.go, worker.go). Delivery
// only drains streams.Hub subscriptions; durable state lives behind Store (store.go).
package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"code.dny.dev/ssrf"
)

var (
	// ErrInvalidURL is wrapped by registration errors about the URL (scheme, host, port, a
	// destination on the deny list). Callers map it to 400; the message names the reason.
	ErrInvalidURL = errors.New("invalid webhook url")
	// ErrBlocked is wrapped by dial errors for a destination on the deny list (SSRF guard).
	ErrBlocked = errors.New("destination not allowed")
)

// DefaultPorts are the destination ports allowed when none are configured.
var DefaultPorts = []uint16{80, 443, 8080, 8443}

// Resolver looks up a host's addresses. *net.Resolver implements it; tests inject stubs so that
// no DNS query leaves the machine.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// PolicyOptions configure a Policy.
type PolicyOptions struct {
	// AllowCIDRs are ranges allowed even though the deny list covers them (internal receivers,
	// tests on loopback).
	AllowCIDRs []netip.Prefix
	// AllowPorts are the destination ports allowed; nil selects DefaultPorts, an empty non-nil
	// slice allows any port.
	AllowPorts []uint16
	// Resolver resolves host names at registration and at dial time (default net.DefaultResolver).
	Resolver Resolver
}

// Policy decides which destinations webhooks may reach. The deny list is code.dny.dev/ssrf's
// (derived from the IANA special-purpose registries: loopback, RFC 1918, link-local, CGNAT,
// multicast, reserved, documentation, and every IPv6 address outside global unicast, which covers
// IPv4-mapped, NAT64 and 6to4 forms), minus AllowCIDRs. A Policy is immutable and safe for
// concurrent use.
type Policy struct {
	guard    *ssrf.Guardian
	ports    []uint16 // nil: any
	resolver Resolver
}

// NewPolicy builds a policy.
func NewPolicy(o PolicyOptions) *Policy {
	var v4, v6 []netip.Prefix
	for _, p := range o.AllowCIDRs {
		if p.Addr().Is4() {
			v4 = append(v4, p.Masked())
		} else {
			v6 = append(v6, p.Masked())
		}
	}
	ports := o.AllowPorts
	if ports == nil {
		ports = DefaultPorts
	}
	opts := []ssrf.Option{ssrf.WithAllowedV4Prefixes(v4...), ssrf.WithAllowedV6Prefixes(v6...)}
	if len(ports) == 0 {
		opts = append(opts, ssrf.WithAnyPort())
		ports = nil
	} else {
		opts = append(opts, ssrf.WithPorts(ports...))
	}
	r := o.Resolver
	if r == nil {
		r = net.DefaultResolver
	}
	return &Policy{guard: ssrf.New(opts...), ports: slices.Clone(ports), resolver: r}
}

// ParseCIDRs parses CIDRs or single addresses ("127.0.0.0/8", "::1").
func ParseCIDRs(list []string) ([]netip.Prefix, error) {
	out := make([]netip.Prefix, 0, len(list))
	for _, s := range list {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return nil, fmt.Errorf("%q is not a CIDR or IP address", s)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// ParsePorts parses a comma-separated port list; "*" allows any port (an empty non-nil result).
func ParsePorts(s string) ([]uint16, error) {
	if strings.TrimSpace(s) == "*" {
		return []uint16{}, nil
	}
	var out []uint16
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		n, err := strconv.ParseUint(part, 10, 16)
		if err != nil || n == 0 {
			return nil, fmt.Errorf("%q is not a port (1-65535)", part)
		}
		out = append(out, uint16(n))
	}
	if len(out) == 0 {
		return nil, errors.New("no ports given (use * for any port)")
	}
	return out, nil
}

// CheckAddr reports whether the policy allows connecting to ap; the error wraps ErrBlocked and
// says why.
func (p *Policy) CheckAddr(ap netip.AddrPort) error {
	if err := p.guard.SafeAddrPort(ap); err != nil {
		return fmt.Errorf("%w: %w", ErrBlocked, err)
	}
	return nil
}

// Control is a net.Dialer Control hook: it runs after the address is resolved and before the
// connection is attempted, so it checks exactly the address dialled (DNS rebinding cannot slip
// past it). Only tcp4 and tcp6 are allowed.
func (p *Policy) Control(network, address string, c syscall.RawConn) error {
	if err := p.guard.Safe(network, address, c); err != nil {
		return fmt.Errorf("%w: %w", ErrBlocked, err)
	}
	return nil
}

// resolveTimeout bounds the registration-time lookup.
const resolveTimeout = 3 * time.Second

// CheckURL validates a webhook URL for registration: http or https, a host, no userinfo, an
// allowed port, and a destination the deny list allows — for IP literals in every encoding
// (127.1, 2130706433, 0x7f000001, [::ffff:127.0.0.1], …) and for names, every address they
// resolve to now. It returns the normalised URL. Errors wrap ErrInvalidURL and name the reason.
// Passing this check is not enough on its own: the delivery client checks every dial again.
func (p *Policy) CheckURL(ctx context.Context, raw string) (*url.URL, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrInvalidURL}, args...)...)
	}
	if raw == "" || len(raw) > 2048 {
		return nil, bad("url must be 1 to 2048 characters")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, bad("url does not parse: %v", errors.Unwrap(err))
	}
	u.Scheme = strings.ToLower(u.Scheme)
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, bad("scheme %q is not allowed (http or https only)", u.Scheme)
	case u.Opaque != "":
		return nil, bad("url must be absolute, like https://host/path")
	case u.User != nil:
		return nil, bad("url must not contain a user name or password")
	case u.Host == "" || u.Hostname() == "":
		return nil, bad("url needs a host")
	}
	port := uint16(80)
	if u.Scheme == "https" {
		port = 443
	}
	if ps := u.Port(); ps != "" {
		n, err := strconv.ParseUint(ps, 10, 16)
		if err != nil || n == 0 {
			return nil, bad("port %q is not a number from 1 to 65535", ps)
		}
		port = uint16(n)
	}
	if p.ports != nil && !slices.Contains(p.ports, port) {
		return nil, bad("port %d is not allowed (allowed: %s)", port, portList(p.ports))
	}
	host := strings.ToLower(u.Hostname())
	u.Fragment, u.RawFragment = "", ""

	addrs, isIP, err := literalAddrs(host)
	if err != nil {
		return nil, bad("%v", err)
	}
	if !isIP {
		if err := validName(host); err != nil {
			return nil, bad("%v", err)
		}
		if host == "localhost" || strings.HasSuffix(strings.TrimSuffix(host, "."), ".localhost") {
			addrs = []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.IPv6Loopback()}
		} else {
			rctx, cancel := context.WithTimeout(ctx, resolveTimeout)
			addrs, err = p.resolver.LookupNetIP(rctx, "ip", host)
			cancel()
			if err != nil || len(addrs) == 0 {
				return nil, bad("host %q does not resolve", host)
			}
		}
	}
	for _, a := range addrs {
		if err := p.CheckAddr(netip.AddrPortFrom(a, port)); err != nil {
			if isIP {
				return nil, bad("destination %s is not allowed: %v", a, reason(err))
			}
			return nil, bad("host %q resolves to %s, which is not allowed: %v", host, a, reason(err))
		}
	}
	return u, nil
}

// reason is the deny list's explanation without the wrapping sentinels.
func reason(err error) string {
	msg := err.Error()
	for _, prefix := range []string{ErrBlocked.Error() + ": ", ssrf.ErrProhibitedIP.Error() + ": "} {
		msg = strings.TrimPrefix(msg, prefix)
	}
	return msg
}

func portList(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ", ")
}

// literalAddrs recognises a host that is an IP address in any encoding browsers and C libraries
// accept: bracketed IPv6 (url.Hostname strips the brackets), dotted quads, and the WHATWG/inet_aton
// forms whose last label is a number (127.1, 2130706433, 0x7f000001, 0177.0.0.1). Such a host must
// parse completely or it is an error.
func literalAddrs(host string) ([]netip.Addr, bool, error) {
	if strings.Contains(host, ":") {
		a, err := netip.ParseAddr(host)
		if err != nil || a.Zone() != "" {
			return nil, true, fmt.Errorf("host %q is not a valid IPv6 address", host)
		}
		return []netip.Addr{a}, true, nil
	}
	trimmed := strings.TrimSuffix(host, ".")
	labels := strings.Split(trimmed, ".")
	if !numericLabel(labels[len(labels)-1]) {
		return nil, false, nil
	}
	a, ok := parseIPv4Loose(labels)
	if !ok {
		return nil, true, fmt.Errorf("host %q looks like an IPv4 address but is not a valid one", host)
	}
	return []netip.Addr{a}, true, nil
}

// numericLabel reports whether a label is a WHATWG "number": decimal digits, or 0x followed by
// hex digits.
func numericLabel(s string) bool {
	if s == "" {
		return false
	}
	if h, ok := strings.CutPrefix(s, "0x"); ok {
		return strings.Trim(h, "0123456789abcdef") == ""
	}
	return strings.Trim(s, "0123456789") == ""
}

// parseIPv4Loose parses 1 to 4 parts, each decimal, octal (leading 0) or hex (0x); all parts but
// the last are one byte, the last fills the remaining bytes.
func parseIPv4Loose(parts []string) (netip.Addr, bool) {
	if len(parts) == 0 || len(parts) > 4 {
		return netip.Addr{}, false
	}
	var v uint64
	for i, part := range parts {
		n, ok := parseIPv4Part(part)
		if !ok {
			return netip.Addr{}, false
		}
		if i < len(parts)-1 {
			if n > 255 {
				return netip.Addr{}, false
			}
			v = v<<8 | n
			continue
		}
		rest := uint(4 - i) // bytes the last part fills
		if n >= 1<<(8*rest) {
			return netip.Addr{}, false
		}
		v = v<<(8*rest) | n
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

func parseIPv4Part(s string) (uint64, bool) {
	base := 10
	switch {
	case strings.HasPrefix(s, "0x"):
		s, base = s[2:], 16
		if s == "" {
			return 0, true // WHATWG: "0x" is zero
		}
	case len(s) > 1 && s[0] == '0':
		s, base = s[1:], 8
	}
	if s == "" {
		return 0, false
	}
	n, err := strconv.ParseUint(s, base, 32)
	return n, err == nil
}

// validName accepts ASCII host names (letters, digits, '-', '_', dots between labels).
func validName(host string) error {
	name := strings.TrimSuffix(host, ".")
	if name == "" || len(name) > 253 {
		return fmt.Errorf("host %q is not a valid host name", host)
	}
	for _, label := range strings.Split(name, ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("host %q is not a valid host name", host)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if c >= 0x80 {
				return fmt.Errorf("host %q is not ASCII: use its punycode (xn--) form", host)
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("host %q has a character not allowed in host names", host)
			}
		}
	}
	return nil
}
