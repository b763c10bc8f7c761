package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"

	"github.com/eventgate/eventgate/streams"
	"github.com/eventgate/eventgate/webhooks"
)

// webhookRuntime is the process's webhook delivery: the management service the handlers use and
// the dispatcher that drains the hub into the endpoints.
type webhookRuntime struct {
	service    *webhooks.Service
	dispatcher *webhooks.Dispatcher
	done       chan struct{} // closed when the dispatcher's Run returned
}

// newWebhookRuntime builds the SSRF-safe client, the service and the dispatcher from cfg.
func newWebhookRuntime(cfg config, logger *slog.Logger, hub *streams.Hub, log streams.Log, st webhooks.Store, obs webhooks.Observer) *webhookRuntime {
	policy := webhooks.NewPolicy(webhooks.PolicyOptions{AllowCIDRs: cfg.WebhookAllowCIDRs, AllowPorts: cfg.WebhookAllowPorts})
	client := webhooks.NewClient(policy, webhooks.ClientOptions{Timeout: cfg.WebhookTimeout})
	d := webhooks.NewDispatcher(hub, st, client, webhooks.Options{
		RetrySchedule: cfg.WebhookRetrySchedule,
		Concurrency:   cfg.WebhookConcurrency,
		LeaseTTL:      cfg.WebhookLeaseTTL,
		Timeout:       cfg.WebhookTimeout,
		Logger:        logger,
		Observer:      obs,
	})
	svc := webhooks.NewService(st, log, policy, d.Kick, webhooks.WithMaxWebhooks(cfg.MaxWebhooks))
	return &webhookRuntime{service: svc, dispatcher: d, done: make(chan struct{})}
}

// start runs the dispatcher until shutdown.
func (w *webhookRuntime) start() {
	go func() { defer close(w.done); _ = w.dispatcher.Run(context.Background()) }()
}

// shutdown stops taking new deliveries at once and lets those in flight finish until deadline;
// the rest stay pending for the next start. The returned channel closes when it is done.
func (w *webhookRuntime) shutdown(deadline time.Time, logger *slog.Logger) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		defer close(out)
		ctx, cancel := context.WithDeadline(context.Background(), deadline)
		defer cancel()
		if err := w.dispatcher.Shutdown(ctx); err != nil {
			logger.Warn("grace period over; webhook deliveries in flight stay pending for the next start")
		}
		<-w.done
	}()
	return out
}

// Parsers of the webhook settings (the rows are in config.go's settings table).

func cidrPrefixes(p *[]netip.Prefix) func(string) error {
	return func(v string) error {
		out, err := webhooks.ParseCIDRs(strings.Split(v, ","))
		if err != nil {
			return err
		}
		*p = out
		return nil
	}
}

func ports(p *[]uint16) func(string) error {
	return func(v string) error {
		out, err := webhooks.ParsePorts(v)
		if err != nil {
			return err
		}
		*p = out
		return nil
	}
}

func durations(p *[]time.Duration, least time.Duration) func(string) error {
	return func(v string) error {
		var out []time.Duration
		for _, part := range strings.Split(v, ",") {
			if part = strings.TrimSpace(part); part == "" {
				continue
			}
			d, err := time.ParseDuration(part)
			if err != nil || d < least {
				return fmt.Errorf("%q: want comma-separated durations such as 5s,5m,1h, each at least %s", part, least)
			}
			out = append(out, d)
		}
		if len(out) == 0 {
			return errors.New("want at least one duration")
		}
		*p = out
		return nil
	}
}
