package faultproxy_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/outboxkit/offsetstore/internal/faultproxy"
)

// echo starts a TCP server that sends every line back.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends line and reads it back within d: the echo, or the read's
// error.
func roundTrip(c net.Conn, line string, d time.Duration) (string, error) {
	if _, err := c.Write([]byte(line + "\n")); err != nil {
		return "", err
	}
	_ = c.SetReadDeadline(time.Now().Add(d))
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", err
	}
	return got[:len(got)-1], nil
}

// VanishAt: the request with the marker and everything after it vanish,
// on every connection, new ones included, and no socket is closed until
// Close.
func TestVanishAt(t *testing.T) {
	p, err := faultproxy.Start(echo(t))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	dial := func() net.Conn {
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	a, b := dial(), dial()
	for _, c := range []net.Conn{a, b} {
		if got, err := roundTrip(c, "hello", 5*time.Second); err != nil || got != "hello" {
			t.Fatalf("before: %q, %v", got, err)
		}
	}
	p.VanishAt([]byte("commit"))
	if got, err := roundTrip(a, "still here", 5*time.Second); err != nil || got != "still here" {
		t.Fatalf("armed, no marker yet: %q, %v", got, err)
	}
	silent := func(what string, c net.Conn, line string) {
		t.Helper()
		got, err := roundTrip(c, line, 300*time.Millisecond)
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: %q, %v; want silence (a read deadline), not an answer or a closed socket", what, got, err)
		}
	}
	silent("the request with the marker", a, "xcommitx")
	if !p.Vanished() {
		t.Fatal("Vanished() is false after the marker")
	}
	silent("later, the same connection", a, "again")
	silent("later, another connection", b, "other")
	silent("a new connection", dial(), "new")

	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	_ = a.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := a.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("the socket stays open after Close")
	}
}
