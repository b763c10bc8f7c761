//go:build !linux

package main

import (
	"errors"
	"io"
)

// runEpoll needs Linux's epoll; elsewhere use -mode goroutine.
func runEpoll(config, io.Reader, io.Writer) (*Result, error) {
	return nil, errors.New("-mode epoll needs Linux: use -mode goroutine")
}
