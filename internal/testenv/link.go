package testenv

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// Link is a TCP proxy between a client under test and a server (a NATS, say) whose
// server-to-client direction can be slowed or held, as over a congested or stalled
// network: what the server sends is never lost, only late. The client-to-server
// direction goes through at once.
type Link struct {
	Addr string // where the client connects

	mu    sync.Mutex
	cond  *sync.Cond
	held  bool
	conns []net.Conn
}

// NewLink starts a proxy to addr that delays every chunk the server sends by delay
// (zero: none). It stops, closing every connection, when t ends.
func NewLink(t testing.TB, addr string, delay time.Duration) *Link {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &Link{Addr: ln.Addr().String()}
	l.cond = sync.NewCond(&l.mu)
	t.Cleanup(func() {
		ln.Close()
		l.mu.Lock()
		defer l.mu.Unlock()
		l.held = false
		l.cond.Broadcast()
		for _, c := range l.conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", addr)
			if err != nil {
				c.Close()
				continue
			}
			l.mu.Lock()
			l.conns = append(l.conns, c, s)
			l.mu.Unlock()
			go func() { _, _ = io.Copy(s, c) }()
			go l.serverToClient(s, c, delay)
		}
	}()
	return l
}

// Hold stops (true) or resumes (false) the server-to-client direction; what the
// server sends meanwhile waits in the proxy.
func (l *Link) Hold(held bool) {
	l.mu.Lock()
	l.held = held
	l.mu.Unlock()
	l.cond.Broadcast()
}

func (l *Link) serverToClient(s, c net.Conn, delay time.Duration) {
	type chunk struct {
		at time.Time
		b  []byte
	}
	q := make(chan chunk, 1024)
	go func() {
		defer close(q)
		buf := make([]byte, 32<<10)
		for {
			n, err := s.Read(buf)
			if n > 0 {
				q <- chunk{time.Now().Add(delay), append([]byte(nil), buf[:n]...)}
			}
			if err != nil {
				return
			}
		}
	}()
	defer c.Close()
	for ch := range q {
		time.Sleep(time.Until(ch.at))
		l.mu.Lock()
		for l.held {
			l.cond.Wait()
		}
		l.mu.Unlock()
		if _, err := c.Write(ch.b); err != nil {
			return
		}
	}
}
