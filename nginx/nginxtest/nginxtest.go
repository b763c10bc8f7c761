// Package nginxtest runs a private, unprivileged nginx for tests: the configuration is rendered
// by package nginx (the same code `go tool task nginx:render` runs) into a fresh directory, and
// nginx listens on a free loopback port in the foreground until the test ends.
//
// The binary is $EVENTGATE_TEST_NGINX, else nginx on PATH, else /usr/sbin/nginx. Without one the
// test is skipped, or fails when EVENTGATE_TEST_REQUIRE_NGINX=1 (`go tool task test` sets it and
// installs Debian's nginx when missing, see .ci/nginx.sh).
package nginxtest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eventgate/eventgate/nginx"
)

const (
	// EnvBinary names the variable holding the nginx binary's path.
	EnvBinary = "EVENTGATE_TEST_NGINX"
	// EnvRequire names the variable that, set to 1, turns a missing nginx into a failure.
	EnvRequire = "EVENTGATE_TEST_REQUIRE_NGINX"

	startTimeout = 15 * time.Second
	stopTimeout  = 5 * time.Second
)

// Binary returns the nginx binary to use, skipping (or failing, see EnvRequire) without one.
func Binary(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv(EnvBinary)}
	if p, err := exec.LookPath("nginx"); err == nil {
		candidates = append(candidates, p)
	}
	candidates = append(candidates, "/usr/sbin/nginx", "/usr/local/sbin/nginx")
	for _, c := range candidates {
		if fi, err := os.Stat(c); c != "" && err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return c
		}
	}
	if os.Getenv(EnvRequire) == "1" {
		t.Fatalf("nginxtest: no nginx binary and %s=1 (set %s, or run `go tool task test`, which installs it)", EnvRequire, EnvBinary)
	}
	t.Skipf("nginxtest: no nginx binary: install Debian's nginx or set %s (%s=1 makes this a failure)", EnvBinary, EnvRequire)
	return ""
}

// Proxy is one running nginx. Its methods may be called from the test goroutine only.
type Proxy struct {
	// Dir is the prefix: nginx.conf, access.log, error.log and the temp directories.
	Dir string
	// Addr is the loopback host:port nginx listens on.
	Addr string

	t      testing.TB
	cmd    *exec.Cmd
	stderr *lockedBuffer
	done   chan struct{} // closed when the master process has exited
}

// Start renders p with Listen set to a free loopback port and starts nginx with
// `nginx -c <dir>/nginx.conf -p <dir>/ -e stderr -g 'daemon off;'`. It returns once nginx serves
// requests; nginx and its workers are stopped at cleanup.
func Start(t testing.TB, p nginx.Params) *Proxy {
	t.Helper()
	bin := Binary(t)
	for attempt := 1; ; attempt++ {
		px, err := start(t, bin, p)
		if err == nil {
			return px
		}
		// A port taken between picking it and nginx's bind: try another one.
		if attempt < 3 && strings.Contains(err.Error(), "Address already in use") {
			continue
		}
		t.Fatalf("nginxtest: %v", err)
	}
}

func start(t testing.TB, bin string, p nginx.Params) (*Proxy, error) {
	dir, err := os.MkdirTemp("", "eventgate-nginx-")
	if err != nil {
		return nil, err
	}
	// When the tests run as root, nginx's workers run as an unprivileged user: they must be
	// able to reach the temp directories under dir.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	p.Listen = freeAddr(t)
	conf, err := nginx.WriteConfig(dir, p)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	px := &Proxy{Dir: dir, Addr: p.Listen, t: t, stderr: &lockedBuffer{}, done: make(chan struct{})}
	px.cmd = exec.Command(bin, "-c", conf, "-p", dir+"/", "-e", "stderr", "-g", "daemon off;")
	px.cmd.Stdout, px.cmd.Stderr = px.stderr, px.stderr
	// Its own process group, so cleanup can reach the workers even if the master is gone; and a
	// fast shutdown if the test binary dies first.
	px.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := px.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	go func() { _ = px.cmd.Wait(); close(px.done) }()
	if err := px.waitReady(); err != nil {
		px.stop()
		os.RemoveAll(dir)
		return nil, fmt.Errorf("nginx on %s: %w; stderr:\n%s", p.Listen, err, px.stderr.String())
	}
	t.Cleanup(func() {
		px.stop()
		if t.Failed() {
			t.Logf("---- nginx %s ----\nstderr:\n%s\nerror.log:\n%s\naccess.log:\n%s---- end nginx ----",
				px.Addr, px.stderr.String(), px.ErrorLog(), px.AccessLog())
		}
		os.RemoveAll(dir)
	})
	return px, nil
}

// waitReady waits until nginx wrote its pid file (it does so after binding the listening
// socket, so the port is ours) and answers a request.
func (px *Proxy) waitReady() error {
	client := &http.Client{Transport: &http.Transport{Proxy: nil}, Timeout: 2 * time.Second}
	want := strconv.Itoa(px.cmd.Process.Pid)
	for deadline := time.Now().Add(startTimeout); time.Now().Before(deadline); {
		if pid, err := os.ReadFile(filepath.Join(px.Dir, "nginx.pid")); err == nil && strings.TrimSpace(string(pid)) == want {
			// /metrics is answered by nginx itself: no upstream needs to be up.
			if resp, err := client.Get(px.URL() + "/metrics"); err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusNotFound {
					return nil
				}
			}
		}
		select {
		case <-px.done:
			return errors.New("exited before serving")
		case <-time.After(20 * time.Millisecond): // poll interval
		}
	}
	return fmt.Errorf("not serving within %s", startTimeout)
}

// URL is nginx's base URL, e.g. http://127.0.0.1:12345.
func (px *Proxy) URL() string { return "http://" + px.Addr }

// AccessLog returns the access log's content so far ("" if there is none yet).
func (px *Proxy) AccessLog() string { return px.readFile("access.log") }

// ErrorLog returns the error log's content so far, plus what nginx wrote to stderr.
func (px *Proxy) ErrorLog() string { return px.readFile("error.log") + px.stderr.String() }

func (px *Proxy) readFile(name string) string {
	b, _ := os.ReadFile(filepath.Join(px.Dir, name))
	return string(b)
}

// stop asks nginx for a fast shutdown (SIGTERM: connections are closed) and, if it is still
// there after stopTimeout, kills its process group. Idempotent.
func (px *Proxy) stop() {
	select {
	case <-px.done:
	default:
		_ = px.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-px.done:
		case <-time.After(stopTimeout):
			px.t.Logf("nginxtest: nginx ignored SIGTERM for %s; killing its process group", stopTimeout)
			_ = syscall.Kill(-px.cmd.Process.Pid, syscall.SIGKILL)
			<-px.done
		}
	}
}

// freeAddr returns a loopback address whose port was free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("nginxtest: picking a port: %v", err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// lockedBuffer collects nginx's output.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string { b.mu.Lock(); defer b.mu.Unlock(); return b.buf.String() }
