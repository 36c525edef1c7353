// Package faultproxy is a TCP proxy for tests that puts faults between a
// client and PostgreSQL: added latency, connections reset on demand, a
// reply dropped after the server has acted on a request (a lost
// acknowledgement: the server committed, the client never hears of it),
// and a network that vanishes silently as a request is sent (no FIN, no
// RST: a cable pulled, a host frozen).
package faultproxy

import (
	"bytes"
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// Proxy forwards connections from a loopback address to a target.
type Proxy struct {
	ln     net.Listener
	target atomic.Pointer[string] // host:port; "": refuse

	latency atomic.Int64 // nanoseconds added before forwarding each chunk

	mu       sync.Mutex
	marker   []byte // armed: drop the reply to the request containing it
	vanishAt []byte // armed: vanish at the request containing it
	conns    map[*link]struct{}
	held     []net.Conn // clients accepted after the vanish, held silent
	closed   bool
	wg       sync.WaitGroup

	vanished atomic.Bool

	// Dropped counts replies dropped by DropReplyAfter.
	Dropped atomic.Int64
}

type link struct {
	client, server net.Conn
	dropNext       atomic.Bool
	once           sync.Once
}

func (l *link) close() {
	l.once.Do(func() {
		l.client.Close()
		l.server.Close()
	})
}

// Start listens on 127.0.0.1 on a free port and forwards every connection
// to target (host:port).
func Start(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, conns: map[*link]struct{}{}}
	p.SetTarget(target)
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr returns the proxy's host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port returns the proxy's port.
func (p *Proxy) Port() uint16 { return uint16(p.ln.Addr().(*net.TCPAddr).Port) }

// SetTarget makes the connections accepted from now on go to target
// (host:port); those open stay where they are. With target "", each new
// connection is closed at once, as by a server that is not there.
func (p *Proxy) SetTarget(target string) { p.target.Store(&target) }

// Target returns where new connections go.
func (p *Proxy) Target() string { return *p.target.Load() }

// SetLatency delays every chunk forwarded in either direction by d.
func (p *Proxy) SetLatency(d time.Duration) { p.latency.Store(int64(d)) }

// DropReplyAfter arms the proxy once: the first request (client to server
// data) that contains marker is forwarded, and the server's next reply on
// that connection is dropped and the connection closed, as a network
// failure after the server acted would look to the client.
func (p *Proxy) DropReplyAfter(marker []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.marker = bytes.Clone(marker)
}

// VanishAt arms the proxy once: the first request (client to server
// data, on any connection) that contains marker is not forwarded, and from
// then on the network is gone without a word: nothing more is forwarded
// on any connection, in either direction, and new connections are
// accepted and never answered. Every socket stays open (no FIN, no RST)
// until Close, so both ends wait as they would for a host whose network
// vanished; neither end's TCP keepalive notices, since the proxy's own
// sockets answer it.
func (p *Proxy) VanishAt(marker []byte) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.vanishAt = bytes.Clone(marker)
}

// Vanished reports whether the network vanished (VanishAt).
func (p *Proxy) Vanished() bool { return p.vanished.Load() }

// Armed reports whether a DropReplyAfter marker is still waiting.
func (p *Proxy) Armed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.marker != nil
}

// ResetAll closes every open connection at once.
func (p *Proxy) ResetAll() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := len(p.conns)
	for l := range p.conns {
		l.close()
	}
	for _, c := range p.held {
		c.Close()
	}
	p.held = nil
	return n
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	err := p.ln.Close()
	p.ResetAll()
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.vanished.Load() {
			p.mu.Lock()
			if p.closed {
				c.Close()
			} else {
				p.held = append(p.held, c) // no server, no answer, no close
			}
			p.mu.Unlock()
			continue
		}
		target := p.Target()
		if target == "" {
			c.Close()
			continue
		}
		s, err := net.DialTimeout("tcp", target, 10*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		l := &link{client: c, server: s}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			l.close()
			return
		}
		p.conns[l] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, true)
		go p.pipe(l, false)
	}
}

func (p *Proxy) pipe(l *link, up bool) {
	defer p.wg.Done()
	defer func() {
		l.close()
		p.mu.Lock()
		delete(p.conns, l)
		p.mu.Unlock()
	}()
	src, dst := l.server, l.client
	if up {
		src, dst = l.client, l.server
	}
	buf := make([]byte, 64<<10)
	var tail []byte // the end of the previous chunk, for markers split across reads
	for {
		n, err := src.Read(buf)
		if n > 0 {
			chunk := buf[:n]
			if d := time.Duration(p.latency.Load()); d > 0 {
				time.Sleep(d)
			}
			if up {
				tail = p.watch(l, tail, chunk)
			} else if l.dropNext.Load() {
				p.Dropped.Add(1)
				return
			}
			if p.vanished.Load() {
				continue // read and dropped: the sockets stay open and silent
			}
			if _, werr := dst.Write(chunk); werr != nil {
				return
			}
		}
		if err != nil {
			if !errors.Is(err, io.EOF) {
				return
			}
			return
		}
	}
}

// watch looks for the armed markers in tail+chunk and returns the new
// tail.
func (p *Proxy) watch(l *link, tail, chunk []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.marker == nil && p.vanishAt == nil {
		return nil
	}
	hay := append(tail, chunk...)
	if p.vanishAt != nil && bytes.Contains(hay, p.vanishAt) {
		p.vanished.Store(true) // before the chunk is written: it never is
		p.vanishAt = nil
		return nil
	}
	if p.marker != nil && bytes.Contains(hay, p.marker) {
		l.dropNext.Store(true)
		p.marker = nil
		return nil
	}
	keep := max(len(p.marker), len(p.vanishAt)) - 1
	if len(hay) > keep {
		hay = hay[len(hay)-keep:]
	}
	return bytes.Clone(hay)
}
