// Command floor is the fan-out floor of this machine (docs/performance.md, issue #15): the
// simplest fast server of eventgate's SSE bytes, for the same load clients (bench/loadclient) and
// the same HTTP publisher as BenchmarkLoad. It keeps no log, checks nothing and never slows for a
// slow reader; what it costs is what any Go SSE server must pay per delivery on this machine, so
// eventgate's figures are reported as a ratio of its.
//
// POST /api/v1/events takes one {"type","data"} object, gives it the next id and encodes its SSE
// frame once; GET /api/v1/stream takes over the connection and one goroutine per connection
// writes every frame it has not written yet, all of them in one writev. With -shards N the
// connections have no goroutine of their own: N workers (one per core, say) each write every new
// frame to their share of the connections in turn, which shows what the 10,000 wake-ups per event
// of a goroutine per connection cost (a client that stops reading would stall its whole shard:
// fine for a floor, not for a server). Loopback only; not part of the eventgate binary.
package main

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "loopback listen address")
	shards := flag.Int("shards", 0, "write from this many workers instead of a goroutine per connection")
	flag.Parse()
	if !strings.HasPrefix(*addr, "127.") {
		log.Fatal("floor: -addr must be a loopback 127.x address")
	}
	b := &broadcast{conns: make(map[*subscriber]struct{})}
	for i := range *shards {
		b.shards = append(b.shards, &shard{wake: make(chan struct{}, 1)})
		go b.shards[i].run(b)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {})
	mux.HandleFunc("POST /api/v1/events", b.publish)
	mux.HandleFunc("GET /api/v1/stream", b.stream)
	log.Fatal((&http.Server{Addr: *addr, Handler: mux}).ListenAndServe())
}

// broadcast is the shared list of encoded frames and the connections that write them.
type broadcast struct {
	mu     sync.Mutex
	frames [][]byte // every frame published, in order (a benchmark run is short)
	conns  map[*subscriber]struct{}
	ms     int64 // id of the last frame
	seq    uint64
	shards []*shard // with -shards: the workers; conns is then unused
	turn   int      // the shard the next connection joins
}

// shard is one worker's share of the connections (-shards).
type shard struct {
	wake  chan struct{}
	mu    sync.Mutex
	conns []*shardConn
}

type shardConn struct {
	conn net.Conn
	next int
}

// run writes every new frame to each of the shard's connections in turn, one writev each.
func (sh *shard) run(b *broadcast) {
	var scratch [][]byte
	for range sh.wake {
		b.mu.Lock()
		frames := b.frames[:len(b.frames):len(b.frames)]
		b.mu.Unlock()
		sh.mu.Lock()
		live := sh.conns[:0]
		for _, c := range sh.conns {
			scratch = append(scratch[:0], frames[c.next:]...)
			c.next = len(frames)
			pending := net.Buffers(scratch)
			if _, err := pending.WriteTo(c.conn); err != nil {
				c.conn.Close()
				continue
			}
			live = append(live, c)
		}
		clear(sh.conns[len(live):])
		sh.conns = live
		sh.mu.Unlock()
	}
}

// subscriber is one connection; next is owned by its writer goroutine.
type subscriber struct {
	wake chan struct{} // capacity 1: "frames after next exist"
	next int
}

func (b *broadcast) publish(w http.ResponseWriter, r *http.Request) {
	var in struct {
		Type string          `json:"type"`
		Data json.RawMessage `json:"data"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&in); err != nil || in.Type == "" {
		http.Error(w, `{"error":{"code":"invalid_event","message":"bad event"}}`, http.StatusBadRequest)
		return
	}
	now := time.Now()
	b.mu.Lock()
	if ms := now.UnixMilli(); ms > b.ms {
		b.ms, b.seq = ms, 0
	} else {
		b.seq++
	}
	id := strconv.FormatInt(b.ms, 10) + "-" + strconv.FormatUint(b.seq, 10)
	var f bytes.Buffer
	fmt.Fprintf(&f, "id: %s\nevent: %s\ndata: {\"id\":%q,\"type\":%q,\"topic\":\"queue\",\"time\":%q,\"data\":%s}\n\n",
		id, in.Type, id, in.Type, now.UTC().Format("2006-01-02T15:04:05.000Z07:00"), in.Data)
	b.frames = append(b.frames, f.Bytes())
	for s := range b.conns {
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
	for _, sh := range b.shards {
		select {
		case sh.wake <- struct{}{}:
		default:
		}
	}
	b.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	fmt.Fprintf(w, `{"ids":[%q]}`, id)
}

func (b *broadcast) stream(w http.ResponseWriter, r *http.Request) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		return
	}
	head := "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n" +
		"X-Accel-Buffering: no\r\nConnection: close\r\n\r\nretry: 1000\n\n"
	if len(b.shards) > 0 {
		b.mu.Lock()
		sh := b.shards[b.turn%len(b.shards)]
		b.turn++
		c := &shardConn{conn: conn, next: len(b.frames)}
		b.mu.Unlock()
		if _, err := io.WriteString(conn, head); err != nil {
			conn.Close()
			return
		}
		sh.mu.Lock()
		sh.conns = append(sh.conns, c)
		sh.mu.Unlock()
		return // the shard owns the connection; a write error closes it
	}
	defer conn.Close()
	s := &subscriber{wake: make(chan struct{}, 1)}
	b.mu.Lock()
	s.next = len(b.frames)
	b.conns[s] = struct{}{}
	b.mu.Unlock()
	defer func() { b.mu.Lock(); delete(b.conns, s); b.mu.Unlock() }()
	if _, err := io.WriteString(conn, head); err != nil {
		return
	}
	gone := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, conn); close(gone) }()
	var scratch [][]byte
	for {
		select {
		case <-gone:
			return
		case <-s.wake:
		}
		b.mu.Lock()
		// A copy of the frames' slice headers: WriteTo consumes (nils) the slice it is given.
		scratch = append(scratch[:0], b.frames[s.next:]...)
		s.next = len(b.frames)
		b.mu.Unlock()
		pending := net.Buffers(scratch)
		if _, err := pending.WriteTo(conn); err != nil { // one writev for all pending frames
			return
		}
	}
}
