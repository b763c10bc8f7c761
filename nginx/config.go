// Package nginx renders the nginx configuration that fronts one or more eventgate instances
// (nginx.conf.tmpl, embedded). The `eventgate nginx-config` subcommand, run by
// `go tool task nginx:render`, and the tests both render through WriteConfig, so what is tested is
// what operators deploy.
//
// The rendered file runs unprivileged with `nginx -c <dir>/nginx.conf -p <dir>`: its pid file,
// logs and temp directories are relative paths, resolved against the prefix. Every value is
// validated strictly (host:port, nginx rates and sizes), so nothing a caller passes can inject
// nginx syntax.
package nginx

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"text/template"
)

//go:embed nginx.conf.tmpl
var confTemplate string

var tmpl = template.Must(template.New("nginx.conf").Option("missingkey=error").Parse(confTemplate))

// ErrInvalid is wrapped by every validation error of Params.
var ErrInvalid = errors.New("invalid nginx parameter")

// Params are the template's inputs. Build them with DefaultParams and set Listen and Upstreams;
// Render and WriteConfig validate them. A Params value is plain data, safe to copy.
type Params struct {
	// Listen is the host:port nginx listens on (an IP, [IPv6], a DNS name, or *).
	Listen string
	// Upstreams are the host:port of each eventgate instance (IP or DNS name), at least one.
	Upstreams []string
	// ConnectRate limits stream and WebSocket connection attempts per client address, as an
	// nginx rate ("10r/s", "600r/m"); ConnectBurst attempts above it are let through at once.
	ConnectRate  string
	ConnectBurst int
	// ConnsPerIP caps concurrent streams and WebSockets per client address.
	ConnsPerIP int
	// APIRate and APIBurst limit every other request per client address.
	APIRate  string
	APIBurst int
	// MaxBody is client_max_body_size ("8m"); match EVENTGATE_MAX_BODY_BYTES.
	MaxBody string
	// WorkerConnections is per nginx worker; each proxied stream takes two.
	WorkerConnections int
}

// DefaultParams returns the defaults for everything but Listen and Upstreams.
func DefaultParams() Params {
	return Params{ConnectRate: "10r/s", ConnectBurst: 20, ConnsPerIP: 20, APIRate: "100r/s", APIBurst: 200,
		MaxBody: "8m", WorkerConnections: 4096}
}

var (
	rateRE     = regexp.MustCompile(`^[1-9][0-9]{0,6}r/[sm]$`)
	sizeRE     = regexp.MustCompile(`^[1-9][0-9]{0,9}[kKmMgG]?$`)
	hostnameRE = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*$`)
)

// normalize validates p and returns it with addresses in the form nginx expects.
func (p Params) normalize() (Params, error) {
	out := p
	var err error
	if out.Listen, err = hostPort(p.Listen, true); err != nil {
		return p, fmt.Errorf("%w: listen: %w", ErrInvalid, err)
	}
	if len(p.Upstreams) == 0 {
		return p, fmt.Errorf("%w: upstreams: at least one host:port is needed", ErrInvalid)
	}
	out.Upstreams = make([]string, 0, len(p.Upstreams))
	seen := map[string]bool{}
	for _, u := range p.Upstreams {
		hp, err := hostPort(u, false)
		if err != nil {
			return p, fmt.Errorf("%w: upstreams: %w", ErrInvalid, err)
		}
		if seen[hp] {
			return p, fmt.Errorf("%w: upstreams: %s is listed twice", ErrInvalid, hp)
		}
		seen[hp] = true
		out.Upstreams = append(out.Upstreams, hp)
	}
	switch {
	case !rateRE.MatchString(p.ConnectRate):
		return p, fmt.Errorf("%w: connect rate %q is not an nginx rate such as 10r/s", ErrInvalid, p.ConnectRate)
	case !rateRE.MatchString(p.APIRate):
		return p, fmt.Errorf("%w: api rate %q is not an nginx rate such as 100r/s", ErrInvalid, p.APIRate)
	case !sizeRE.MatchString(p.MaxBody):
		return p, fmt.Errorf("%w: max body %q is not an nginx size such as 8m", ErrInvalid, p.MaxBody)
	case p.ConnectBurst < 0 || p.APIBurst < 0:
		return p, fmt.Errorf("%w: bursts must not be negative", ErrInvalid)
	case p.ConnsPerIP < 1:
		return p, fmt.Errorf("%w: connections per IP must be at least 1", ErrInvalid)
	case p.WorkerConnections < 64:
		return p, fmt.Errorf("%w: worker connections must be at least 64", ErrInvalid)
	}
	return out, nil
}

// hostPort validates "host:port" (host: IPv4, [IPv6], a DNS name, or * when listening) and
// returns it in the form nginx expects.
func hostPort(s string, listening bool) (string, error) {
	host, portStr, err := net.SplitHostPort(s)
	if err != nil {
		return "", fmt.Errorf("%q is not host:port", s)
	}
	if port, err := strconv.Atoi(portStr); err != nil || port < 1 || port > 65535 || portStr[0] == '0' {
		return "", fmt.Errorf("%q: the port must be 1 to 65535", s)
	}
	switch addr, aerr := netip.ParseAddr(host); {
	case aerr == nil && addr.Zone() != "":
		return "", fmt.Errorf("%q: zoned addresses are not supported", s)
	case aerr == nil:
		return net.JoinHostPort(addr.String(), portStr), nil
	case listening && host == "*":
		return "*:" + portStr, nil
	case len(host) <= 253 && hostnameRE.MatchString(host):
		return host + ":" + portStr, nil
	default:
		return "", fmt.Errorf("%q: the host must be an IP address or a DNS name", s)
	}
}

// Render validates p and writes the configuration to w.
func Render(w io.Writer, p Params) error {
	n, err := p.normalize()
	if err != nil {
		return err
	}
	if err := tmpl.Execute(w, n); err != nil {
		return fmt.Errorf("rendering nginx.conf: %w", err)
	}
	return nil
}

// WriteConfig renders p into dir/nginx.conf, atomically (temp file and rename), and returns the
// file's absolute path. dir is created if missing, with mode 0755: when nginx starts as root its
// workers run as an unprivileged user and must reach the temp directories inside dir.
func WriteConfig(dir string, p Params) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(abs, 0o755); err != nil {
		return "", fmt.Errorf("creating %s: %w", abs, err)
	}
	f, err := os.CreateTemp(abs, ".nginx.conf.*")
	if err != nil {
		return "", fmt.Errorf("writing into %s: %w", abs, err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := Render(f, p); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	if err := f.Close(); err != nil {
		return "", fmt.Errorf("writing %s: %w", f.Name(), err)
	}
	path := filepath.Join(abs, "nginx.conf")
	if err := os.Rename(f.Name(), path); err != nil {
		return "", fmt.Errorf("writing %s: %w", path, err)
	}
	return path, nil
}
