package main

// `eventgate nginx-config` writes nginx.conf for one or more eventgate instances; it is what
// `go tool task nginx:render LISTEN=<host:port> UPSTREAMS=<host:port,…> OUT=<dir>` runs:
//
//	eventgate nginx-config -listen 127.0.0.1:8088 -upstreams 127.0.0.1:8081,127.0.0.1:8082 -out deploy/nginx
//
// The rendering and its validation live in package nginx, shared with the tests that run the
// result under a real nginx. Exit code 2 means bad arguments, 1 a failed write.

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/eventgate/eventgate/nginx"
)

// runNginxConfig is `eventgate nginx-config`: it parses args, writes OUT/nginx.conf and says on
// stdout how to run it.
func runNginxConfig(args []string, stdout, stderr io.Writer) int {
	p := nginx.DefaultParams()
	fs := flag.NewFlagSet("eventgate nginx-config", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&p.Listen, "listen", "", "host:port nginx listens on (required)")
	upstreams := fs.String("upstreams", "", "comma-separated host:port of the eventgate instances (required)")
	out := fs.String("out", "", "directory to write nginx.conf into; created if missing (required)")
	fs.StringVar(&p.ConnectRate, "connect-rate", p.ConnectRate, "stream and WebSocket connection attempts per client address (Nr/s or Nr/m)")
	fs.IntVar(&p.ConnectBurst, "connect-burst", p.ConnectBurst, "connection attempts allowed above -connect-rate at once")
	fs.IntVar(&p.ConnsPerIP, "conns-per-ip", p.ConnsPerIP, "concurrent streams and WebSockets per client address")
	fs.StringVar(&p.APIRate, "api-rate", p.APIRate, "other requests per client address (Nr/s or Nr/m)")
	fs.IntVar(&p.APIBurst, "api-burst", p.APIBurst, "requests allowed above -api-rate at once")
	fs.StringVar(&p.MaxBody, "max-body", p.MaxBody, "largest request body (match EVENTGATE_MAX_BODY_BYTES)")
	fs.IntVar(&p.WorkerConnections, "worker-connections", p.WorkerConnections, "connections per nginx worker (two per proxied stream)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 || p.Listen == "" || *upstreams == "" || *out == "" {
		fmt.Fprintln(stderr, "usage: eventgate nginx-config -listen host:port -upstreams host:port[,host:port...] -out dir [flags]")
		return 2
	}
	for _, u := range strings.Split(*upstreams, ",") {
		p.Upstreams = append(p.Upstreams, strings.TrimSpace(u))
	}
	path, err := nginx.WriteConfig(*out, p)
	if err != nil {
		fmt.Fprintf(stderr, "eventgate nginx-config: %v\n", err)
		if errors.Is(err, nginx.ErrInvalid) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stdout, "wrote %s\nrun it with: nginx -c %s -p %s\n", path, path, filepath.Dir(path)+string(filepath.Separator))
	return 0
}
