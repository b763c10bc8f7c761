package handlers

import (
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
)

// checkOrigin allows requests without an Origin (non-browser clients), the configured origins,
// and same-origin requests: an Origin whose host is the request's Host and whose scheme is the
// one the client used to reach us (requestScheme). The scheme matters: a page served over plain
// http — which anyone on the network path can rewrite — must not act, with the user's cookie,
// on the https service of the same host. A foreign Origin with cookie auth would be cross-site
// WebSocket hijacking. Safe for concurrent use.
func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	for _, allowed := range s.cfg.AllowedOrigins {
		if allowed == "*" || strings.EqualFold(allowed, origin) { // scheme://host[:port], scheme included
			return true
		}
	}
	return strings.EqualFold(u.Scheme, s.requestScheme(r)) && strings.EqualFold(u.Host, r.Host)
}

// requestScheme is the scheme the client used: https on a TLS connection; else the first
// X-Forwarded-Proto of a trusted proxy (EVENTGATE_TRUSTED_PROXIES), which terminated TLS for us;
// else http — the header of a peer we do not trust proves nothing.
func (s *Server) requestScheme(r *http.Request) string {
	if r.TLS != nil {
		return "https"
	}
	v := r.Header.Get("X-Forwarded-Proto")
	if v == "" || !s.trustedPeer(r.RemoteAddr) {
		return "http"
	}
	first, _, _ := strings.Cut(v, ",") // proxies append: the first is the client's
	switch strings.ToLower(strings.TrimSpace(first)) {
	case "https", "wss":
		return "https"
	}
	return "http"
}

// trustedPeer reports whether the TCP peer (host:port) is in EVENTGATE_TRUSTED_PROXIES.
func (s *Server) trustedPeer(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return false
	}
	ip = ip.Unmap()
	for _, p := range s.trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// parseTrusted parses TrustedProxies: CIDRs or single addresses.
func parseTrusted(list []string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, v := range list {
		p, err := netip.ParsePrefix(v)
		if err != nil {
			ip, err2 := netip.ParseAddr(v)
			if err2 != nil {
				return nil, err
			}
			p = netip.PrefixFrom(ip, ip.BitLen())
		}
		out = append(out, p.Masked())
	}
	return out, nil
}
