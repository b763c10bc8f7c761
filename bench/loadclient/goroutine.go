package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// runGoroutine is -mode goroutine: one goroutine per connection, reading through net/http (SSE)
// or gorilla/websocket. It is how a Go client is usually written, and it costs about as much CPU
// per delivery as the server it measures (a wake-up of the runtime's poller and scheduler per
// connection per event), which is why epoll mode exists.
func runGoroutine(cfg config, stdin io.Reader, stdout io.Writer) (*Result, error) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	p := newProgress(cfg)
	conns := make([]*conn, cfg.n)
	var wg sync.WaitGroup
	var openErr error
	var errOnce sync.Once
	sem := make(chan struct{}, 64)
	var opened sync.WaitGroup
	for i := range cfg.n {
		c := &conn{lat: make([]uint32, 0, max(cfg.events, 16))}
		conns[i] = c
		sem <- struct{}{}
		opened.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			read, err := open(ctx, cfg.url, cfg.transport)
			<-sem
			opened.Done()
			if err != nil {
				errOnce.Do(func() { openErr = err })
				return
			}
			read(func(id [2]uint64, sent int64) { p.record(c, id, sent, time.Now().UnixNano()) })
			if ctx.Err() == nil {
				c.dropped = true
			}
		}()
	}
	opened.Wait()
	if openErr != nil {
		return nil, fmt.Errorf("opening connections: %w", openErr)
	}
	cpu0 := awaitEnd(p, stdin, stdout)
	cancel()
	wg.Wait()
	r := tally(conns, int64(cfg.n)*int64(cfg.events))
	r.CPUSeconds = cpuSeconds() - cpu0
	return r, nil
}

// open connects one subscriber and returns its read loop, which calls onEvent per event (in
// arrival order) until the connection or ctx ends.
func open(ctx context.Context, url, transport string) (func(onEvent func(id [2]uint64, sent int64)), error) {
	if transport == "websocket" {
		d := websocket.Dialer{ReadBufferSize: 4096, WriteBufferSize: 512, NetDialContext: dialNoLinger}
		ws, _, err := d.DialContext(ctx, "ws"+strings.TrimPrefix(url, "http")+"/api/v1/ws", nil)
		if err != nil {
			return nil, err
		}
		context.AfterFunc(ctx, func() { ws.Close() })
		return func(onEvent func([2]uint64, int64)) {
			for {
				_, msg, err := ws.ReadMessage()
				if err != nil {
					return
				}
				if id, sent, ok := parseEvent(msg); ok {
					onEvent(id, sent)
				}
			}
		}, nil
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/api/v1/stream", nil)
	resp, err := sseTransport.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("stream: status %d", resp.StatusCode)
	}
	r := bufio.NewReaderSize(resp.Body, 16<<10)
	if _, err := r.ReadSlice('\n'); err != nil { // retry: the server has subscribed
		resp.Body.Close()
		return nil, err
	}
	return func(onEvent func([2]uint64, int64)) {
		defer resp.Body.Close()
		for {
			line, err := r.ReadSlice('\n')
			if err != nil {
				if !errors.Is(err, bufio.ErrBufferFull) {
					return
				}
				continue // longer than the buffer: not a line this benchmark sends
			}
			if data, ok := bytes.CutPrefix(line, []byte("data: ")); ok {
				if id, sent, ok := parseEvent(data); ok {
					onEvent(id, sent)
				}
			}
		}
	}, nil
}

// dialNoLinger dials a connection that resets rather than lingers in TIME_WAIT when closed: a
// run's 10,000 connections, closed by the client, would otherwise hold their ephemeral ports for
// a minute, and three runs in a row exhaust the range (28,000 ports by default on Linux).
func dialNoLinger(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	return c, err
}

var sseTransport = &http.Transport{
	Proxy:       nil,
	DialContext: dialNoLinger,
	// Every stream is its own connection; none goes back to a pool.
	DisableKeepAlives: true,
}
