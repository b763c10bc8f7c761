package main

import (
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// runEpoll is -mode epoll: a few worker threads (-workers, one per core by default), each with its
// own epoll instance and its share of the connections, read every socket with raw syscalls and
// parse the bytes in place. There is no goroutine per connection: one epoll_wait returns every
// socket with data, and each costs one read, where goroutine mode pays per connection and per
// event a netpoller wake-up, a goroutine switch and bufio's copies. That saves about 10 % of the
// client's CPU, no more: a profile at 10,000 × 20 spends ~80 % of it in the kernel, in the read
// (tcp_recvmsg, with the ACK it sends and, on loopback, that ACK's receipt by the server's socket)
// and in epoll_wait.
func runEpoll(cfg config, stdin io.Reader, stdout io.Writer) (*Result, error) {
	p := newProgress(cfg)
	streams := make([]*stream, cfg.n)
	fds := make([]int, cfg.n)
	for i := range fds {
		fds[i] = -1
	}
	// Open 64 at a time (as goroutine mode does), all before the workers start: the publisher
	// does not start before "ready", and what arrives before then waits in the socket.
	var openErr error
	var errOnce sync.Once
	var wg sync.WaitGroup
	sem := make(chan struct{}, 64)
	for i := range cfg.n {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			s, fd, err := openStream(cfg, p)
			if err != nil {
				errOnce.Do(func() { openErr = err })
				return
			}
			streams[i], fds[i] = s, fd
		}()
	}
	wg.Wait()
	if openErr != nil {
		for _, fd := range fds {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
		return nil, fmt.Errorf("opening connections: %w", openErr)
	}

	workers := make([]*worker, min(cfg.workers, max(cfg.n, 1)))
	// One P more than workers, always idle: with none idle, the runtime's monitor takes the P of
	// a worker blocked in epoll_wait and wakes a thread to run it, tens of thousands of times a
	// second (measured: 11% of the client's CPU), and the worker waits for a P when it returns.
	if runtime.GOMAXPROCS(0) <= len(workers) {
		runtime.GOMAXPROCS(len(workers) + 1)
	}
	for k := range workers {
		epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
		if err != nil {
			return nil, fmt.Errorf("epoll_create1: %w", err)
		}
		workers[k] = &worker{epfd: epfd, buf: make([]byte, 64<<10)}
	}
	for i, s := range streams {
		w := workers[i%len(workers)]
		ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(len(w.conns))} // Fd: the index in w.conns
		if err := syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_ADD, fds[i], &ev); err != nil {
			return nil, fmt.Errorf("epoll_ctl: %w", err)
		}
		w.conns = append(w.conns, epConn{stream: s, fd: fds[i]})
	}
	var stop atomic.Bool
	for _, w := range workers {
		wg.Add(1)
		go func() { defer wg.Done(); w.run(&stop) }()
	}
	cpu0 := awaitEnd(p, stdin, stdout)
	stop.Store(true) // the workers see it within an epoll_wait timeout
	wg.Wait()
	conns := make([]*conn, 0, cfg.n)
	var err error
	var reads int64
	for _, w := range workers {
		err = errors.Join(err, w.err)
		reads += w.reads
		for i := range w.conns {
			conns = append(conns, &w.conns[i].conn)
		}
	}
	if err != nil {
		return nil, err
	}
	r := tally(conns, int64(cfg.n)*int64(cfg.events))
	r.CPUSeconds = cpuSeconds() - cpu0
	r.Reads = reads
	return r, nil
}

// worker is one reader thread: its epoll instance and its connections, owned by its goroutine
// from run on.
type worker struct {
	epfd  int
	conns []epConn
	buf   []byte // every read lands here and is parsed in place
	err   error  // epoll_wait failed
	reads int64  // reads that returned data
}

type epConn struct {
	*stream
	fd int // -1 once closed
}

// pollTimeout is how long a worker waits for data before it looks at stop again.
const pollTimeout = 50 // ms

func (w *worker) run(stop *atomic.Bool) {
	// A thread of its own: the worker is always either in epoll_wait or parsing, and the
	// scheduler has nothing to move.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	defer w.closeAll()
	events := make([]syscall.EpollEvent, 1024)
	for !stop.Load() {
		n, err := syscall.EpollWait(w.epfd, events, pollTimeout)
		if err != nil {
			if errors.Is(err, syscall.EINTR) {
				continue
			}
			w.err = fmt.Errorf("epoll_wait: %w", err)
			return
		}
		for _, ev := range events[:n] {
			if c := &w.conns[ev.Fd]; c.fd >= 0 {
				w.read(c, stop)
			}
		}
	}
}

// read does one read of c's socket: level-triggered epoll reports it again if more is waiting.
// The time of arrival is taken once per read, just after it returns.
func (w *worker) read(c *epConn, stop *atomic.Bool) {
	// A raw syscall: a non-blocking read never waits, so the runtime need not be told of it.
	r, _, errno := syscall.RawSyscall(syscall.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&w.buf[0])), uintptr(len(w.buf)))
	n := int(r)
	if errno == syscall.EAGAIN || errno == syscall.EINTR {
		return
	}
	if errno != 0 || n <= 0 { // reset or end of stream
		w.end(c, stop)
		return
	}
	w.reads++
	c.feed(w.buf[:n], time.Now().UnixNano())
	if len(c.pong) > 0 { // rare and small: the socket's send buffer takes it
		_, _ = syscall.Write(c.fd, c.pong)
		c.pong = c.pong[:0]
	}
	if c.err != nil {
		w.end(c, stop)
	}
}

// end closes a connection the server ended (or broke the protocol on); before the run's end,
// that is a dropped connection, as in goroutine mode.
func (w *worker) end(c *epConn, stop *atomic.Bool) {
	c.dropped = !stop.Load()
	_ = syscall.EpollCtl(w.epfd, syscall.EPOLL_CTL_DEL, c.fd, nil)
	_ = syscall.Close(c.fd)
	c.fd = -1
}

// closeAll closes the worker's connections (each resets: SO_LINGER 0) and its epoll instance.
func (w *worker) closeAll() {
	for i := range w.conns {
		if c := &w.conns[i]; c.fd >= 0 {
			_ = syscall.Close(c.fd)
			c.fd = -1
		}
	}
	_ = syscall.Close(w.epfd)
}
