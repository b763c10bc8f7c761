package backoff

import (
	"context"
	"testing"
	"time"
)

func TestDelay(t *testing.T) {
	t.Parallel()
	const ms, s = time.Millisecond, time.Second
	tests := []struct {
		name string
		p    Policy
		want []time.Duration // Delay(0), Delay(1), …
	}{
		// The store policy's sequence, as the hub, the projector and webhook workers had it.
		{"store", Store, []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 5 * s, 5 * s}},
		// eventgate publish: 1 s doubling to 15 s.
		{"publish", Policy{Base: s, Max: 15 * s}, []time.Duration{s, 2 * s, 4 * s, 8 * s, 15 * s, 15 * s}},
		// eventgate tail with a server retry above --max-backoff: the retry.
		{"base above max", Policy{Base: 40 * s, Max: 30 * s}, []time.Duration{40 * s, 40 * s}},
		{"zero base", Policy{Max: s}, []time.Duration{0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			for n, want := range tt.want {
				if got := tt.p.Delay(n); got != want {
					t.Errorf("Delay(%d) = %s, want %s", n, got, want)
				}
			}
		})
	}
	if got := Store.Delay(1 << 40); got != 5*s {
		t.Errorf("Delay(huge) = %s, want the cap", got)
	}
}

func TestWait(t *testing.T) {
	t.Parallel()
	if !Wait(context.Background(), time.Millisecond) {
		t.Fatal("Wait with a live context: false")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if Wait(ctx, time.Hour) {
		t.Fatal("Wait with an ended context: true")
	}
}
