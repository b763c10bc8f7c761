package store

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// TestDiskFailedWALSyncStopsProcess: when the write-ahead log's fsync fails (a full or failing
// disk), the process stops (Pebble treats it as fatal; pebbleLogger.Fatalf panics) and the append
// caught in it is never acknowledged: no 201 for what the disk did not take. Run in a child
// process, which the fault is expected to kill.
func TestDiskFailedWALSyncStopsProcess(t *testing.T) {
	if os.Getenv("EVENTGATE_TEST_WAL_FAULT_CHILD") == "1" {
		walFaultChild(t)
		return
	}
	t.Parallel()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestDiskFailedWALSyncStopsProcess$", "-test.count", "1")
	cmd.Env = append(os.Environ(), "EVENTGATE_TEST_WAL_FAULT_CHILD=1")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) {
		t.Fatalf("the child ended without an error (%v): the failed fsync did not stop it\n%s", err, out)
	}
	if strings.Contains(string(out), "ACKNOWLEDGED") {
		t.Fatalf("an append whose fsync failed was acknowledged\n%s", out)
	}
	if !strings.Contains(string(out), "pebble:") {
		t.Fatalf("the child did not stop on Pebble's fatal error\n%s", out)
	}
}

func walFaultChild(t *testing.T) {
	fs := &walFS{FS: vfs.NewMem()}
	d := openDiskOn(t, fs, DiskOptions{Poll: 20 * time.Millisecond})
	if _, err := d.Append(t.Context(), drafts(t, 1)); err != nil {
		t.Fatal(err) // the disk is still healthy here
	}
	fs.setOnSync(func() error { return errors.New("injected: input/output error") })
	ids, err := d.Append(t.Context(), drafts(t, 1))
	if err == nil {
		fmt.Println("ACKNOWLEDGED", ids)
	}
	// Either way the process must not get here alive for long: Pebble's fatal error panics on
	// the appender's goroutine. Give it the time to.
	<-time.After(10 * time.Second)
	fmt.Println("still running after the failed fsync:", err)
}
