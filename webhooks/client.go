package webhooks

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"time"
)

// ClientOptions tune the delivery client. Zero values select the defaults.
type ClientOptions struct {
	// Timeout bounds one whole attempt: connect, TLS, request and response headers (default 10s).
	Timeout time.Duration
	// ConnectTimeout bounds connecting (default min(5s, Timeout)).
	ConnectTimeout time.Duration
}

func (o *ClientOptions) defaults() {
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.ConnectTimeout <= 0 {
		o.ConnectTimeout = min(5*time.Second, o.Timeout)
	}
}

// NewClient returns the HTTP client webhooks are delivered with. Every connection it opens is
// checked by p at dial time (after name resolution, in the dialer's Control hook); proxies from
// the environment are ignored (else the proxy's address is what would be checked); redirects are
// not followed (the 3xx answer is returned and counts as a failure); each request is bounded by
// o.Timeout. The client is safe for concurrent use.
func NewClient(p *Policy, o ClientOptions) *http.Client {
	o.defaults()
	d := &guardedDialer{policy: p, dialer: &net.Dialer{Timeout: o.ConnectTimeout, KeepAlive: 30 * time.Second, Control: p.Control}}
	t := &http.Transport{
		Proxy:                  nil,
		DialContext:            d.DialContext,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           256,
		MaxIdleConnsPerHost:    8,
		IdleConnTimeout:        90 * time.Second,
		TLSHandshakeTimeout:    o.ConnectTimeout,
		ResponseHeaderTimeout:  o.Timeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
	return &http.Client{
		Transport: t,
		Timeout:   o.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// guardedDialer resolves with the policy's resolver and dials each address with the Control
// hook, so the address checked is the address connected to.
type guardedDialer struct {
	policy *Policy
	dialer *net.Dialer
}

// DialContext dials addr ("host:port"), trying each resolved address in turn.
func (g *guardedDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("dial %s: bad port: %w", addr, err)
	}
	var ips []netip.Addr
	if ip, err := netip.ParseAddr(host); err == nil {
		ips = []netip.Addr{ip}
	} else if ips, err = g.policy.resolver.LookupNetIP(ctx, "ip", host); err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	var errs []error
	for _, ip := range ips {
		ap := netip.AddrPortFrom(ip, uint16(port))
		// Checked here for a clear error, and again by Control on the socket's address.
		if err := g.policy.CheckAddr(ap); err != nil {
			errs = append(errs, err)
			continue
		}
		conn, err := g.dialer.DialContext(ctx, network, ap.String())
		if err == nil {
			return conn, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	if len(errs) == 0 {
		return nil, fmt.Errorf("dial %s: no addresses", addr)
	}
	return nil, fmt.Errorf("dial %s: %w", addr, errors.Join(errs...))
}
