//go:build !linux

package handlers

import "net"

// limitUnsent is a no-op where TCP_NOTSENT_LOWAT is not set (see progress_linux.go): chunked
// writes still judge progress, more coarsely.
func limitUnsent(net.Conn) {}
