package main

import (
	"bytes"
	"crypto/rand"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// handshakeTimeout bounds one connection's dial, request and subscription.
const handshakeTimeout = 10 * time.Second

// openStream connects one subscriber and does its handshake with plain blocking I/O through Go's
// net package (it happens once per connection, before "ready": its cost is not measured). Then
// it hands the socket over as a duplicate of its descriptor, non-blocking, for an epoll worker to
// read; closing the net.Conn closes only the original descriptor.
//
// SSE is ready once the first line (retry:) is read: the server writes it after subscribing, as
// in goroutine mode. WebSocket is ready once upgraded, as when gorilla's Dial returns.
func openStream(cfg config, p *progress) (*stream, int, error) {
	d := net.Dialer{Timeout: handshakeTimeout}
	nc, err := d.Dial("tcp4", cfg.host)
	if err != nil {
		return nil, -1, err
	}
	defer nc.Close()
	tc := nc.(*net.TCPConn)
	_ = tc.SetLinger(0) // reset on close, never TIME_WAIT: see dialNoLinger
	_ = nc.SetDeadline(time.Now().Add(handshakeTimeout))
	s := &stream{conn: conn{lat: make([]uint32, 0, max(cfg.events, 16))}, p: p,
		ws: cfg.transport == "websocket", chunkLeft: chunkSize}

	var req, accept string
	if s.ws {
		var k [16]byte
		_, _ = rand.Read(k[:])
		key := base64.StdEncoding.EncodeToString(k[:])
		sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		accept = base64.StdEncoding.EncodeToString(sum[:])
		req = "GET /api/v1/ws HTTP/1.1\r\nHost: " + cfg.host + "\r\nUpgrade: websocket\r\n" +
			"Connection: Upgrade\r\nSec-WebSocket-Key: " + key + "\r\nSec-WebSocket-Version: 13\r\n\r\n"
	} else {
		req = "GET /api/v1/stream HTTP/1.1\r\nHost: " + cfg.host + "\r\nAccept: text/event-stream\r\n" +
			"Cache-Control: no-cache\r\nConnection: close\r\n\r\n"
	}
	if _, err := nc.Write([]byte(req)); err != nil {
		return nil, -1, err
	}

	buf := make([]byte, 4096)
	n, end := 0, -1
	for end < 0 {
		if n == len(buf) {
			return nil, -1, errors.New("response head too long")
		}
		m, err := nc.Read(buf[n:])
		n += m
		end = bytes.Index(buf[:n], []byte("\r\n\r\n"))
		if end < 0 && err != nil {
			return nil, -1, fmt.Errorf("reading the response head: %w", err)
		}
	}
	status, header := parseHead(string(buf[:end]))
	body := buf[end+4 : n]
	if s.ws {
		if status != 101 || !strings.EqualFold(header["upgrade"], "websocket") || header["sec-websocket-accept"] != accept {
			return nil, -1, fmt.Errorf("websocket: no upgrade (status %d)", status)
		}
		s.ready = true
	} else {
		if status != 200 {
			return nil, -1, fmt.Errorf("stream: status %d", status)
		}
		s.chunked = strings.Contains(strings.ToLower(header["transfer-encoding"]), "chunked")
	}
	s.feed(body, time.Now().UnixNano())
	for !s.ready && s.err == nil {
		m, err := nc.Read(buf)
		s.feed(buf[:m], time.Now().UnixNano())
		if err != nil && !s.ready {
			return nil, -1, fmt.Errorf("stream: waiting for the first line: %w", err)
		}
	}
	if s.err != nil {
		return nil, -1, fmt.Errorf("handshake: %w", s.err)
	}
	if len(s.pong) > 0 {
		if _, err := nc.Write(s.pong); err != nil {
			return nil, -1, err
		}
		s.pong = s.pong[:0]
	}

	raw, err := tc.SyscallConn()
	if err != nil {
		return nil, -1, err
	}
	fd := -1
	if cerr := raw.Control(func(f uintptr) { fd, err = syscall.Dup(int(f)) }); cerr != nil {
		return nil, -1, cerr
	}
	if err != nil {
		return nil, -1, fmt.Errorf("dup: %w", err)
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return nil, -1, err
	}
	return s, fd, nil
}

// parseHead reads a response head's status code and its header fields (names lower-cased, the
// last of repeated fields kept: the few this client reads are never repeated).
func parseHead(head string) (int, map[string]string) {
	lines := strings.Split(head, "\r\n")
	var status int
	if f := strings.Fields(lines[0]); len(f) >= 2 && strings.HasPrefix(f[0], "HTTP/1.") {
		status, _ = strconv.Atoi(f[1])
	}
	h := make(map[string]string, len(lines))
	for _, l := range lines[1:] {
		if name, v, ok := strings.Cut(l, ":"); ok {
			h[strings.ToLower(strings.TrimSpace(name))] = strings.TrimSpace(v)
		}
	}
	return status, h
}
