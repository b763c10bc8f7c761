package main

// What `eventgate publish` and `eventgate tail` share: the endpoint and token flags, the client
// they make of them, and exit codes. The protocol is package client's.

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/eventgate/eventgate/client"
)

// Exit codes of the client subcommands.
const (
	exitOK      = 0
	exitFailure = 1 // the server refused, or could not be reached
	exitUsage   = 2 // bad flags or input
	exitAuth    = 3 // tail: 401/403
)

// defaultClientURL is used when neither --url nor EVENTGATE_URL is set.
const defaultClientURL = "http://127.0.0.1:8080"

// clientFlags are the connection settings of a client subcommand.
type clientFlags struct {
	url      string
	token    string // --token
	envToken string // $EVENTGATE_TOKEN, used when --token is empty
}

// register adds --url and --token to fs, defaulting to EVENTGATE_URL and EVENTGATE_TOKEN.
func (c *clientFlags) register(fs *flag.FlagSet, getenv func(string) string) {
	def := getenv("EVENTGATE_URL")
	if def == "" {
		def = defaultClientURL
	}
	fs.StringVar(&c.url, "url", def, "eventgate base URL ($EVENTGATE_URL)")
	// The environment's token is not the flag's default: -h would print it.
	c.envToken = getenv("EVENTGATE_TOKEN")
	fs.StringVar(&c.token, "token", "", "bearer token (default $EVENTGATE_TOKEN); sent as Authorization: Bearer, never printed")
}

// newClient returns a client of the server at --url with the token, sending requests with do
// (nil: the client's default). It fails on a --url that is not http(s)://host[:port][/prefix].
func (c *clientFlags) newClient(do func(*http.Request) (*http.Response, error)) (*client.Client, error) {
	t := strings.TrimSpace(c.token)
	if t == "" {
		t = strings.TrimSpace(c.envToken)
	}
	o := client.Options{Token: t}
	if do != nil {
		o.HTTPClient = doFunc(do)
	}
	return client.New(c.url, o)
}

// doFunc adapts a round-trip function (the subcommands' tests inject fakes) to client.Doer.
type doFunc func(*http.Request) (*http.Response, error)

func (f doFunc) Do(req *http.Request) (*http.Response, error) { return f(req) }

// clientCommand runs a client subcommand with the process's stdio until it returns or SIGINT /
// SIGTERM arrives (which ends it cleanly); it returns the exit code.
func clientCommand(cmd func(ctx context.Context, args []string) int, args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return cmd(ctx, args)
}

// runPublishStd is `eventgate publish` on the process's environment and stdio.
func runPublishStd(ctx context.Context, args []string) int {
	return runPublish(ctx, args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
}

// runTailStd is `eventgate tail` on the process's environment and stdio.
func runTailStd(ctx context.Context, args []string) int {
	return runTail(ctx, args, os.Getenv, os.Stdout, os.Stderr)
}

// exitCode reports a subcommand's outcome: 0 for nil; otherwise it prints the error and returns
// code for errors matching special, exitFailure for the rest.
func exitCode(stderr io.Writer, cmd string, err error, special error, code int) int {
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "eventgate %s: %v\n", cmd, err)
	if errors.Is(err, special) {
		return code
	}
	return exitFailure
}
