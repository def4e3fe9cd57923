package mxtest

import (
	"bufio"
	"bytes"
	"errors"
	"net"
	"sync"
	"time"
)

// recordingConn sits between the socket and go-smtp. While the session is in
// cleartext it hands go-smtp one line at a time, so that it can record
// exactly the bytes that arrived unencrypted and can answer STARTTLS itself
// in the modes go-smtp has no notion of (454, broken handshake). Once
// go-smtp has answered STARTTLS with 220, everything after is TLS records.
type recordingConn struct {
	net.Conn
	server *Server
	id     int
	br     *bufio.Reader
	rest   []byte // recorded bytes the reader had no room for yet

	mu        sync.Mutex
	encrypted bool
	pending   bool // STARTTLS read, go-smtp's answer not yet written
	inData    bool // between 354 and the lone dot: lines are content
	midLine   bool // the last chunk handed over did not end a line
}

func newRecordingConn(c net.Conn, s *Server, id int) *recordingConn {
	return &recordingConn{Conn: c, server: s, id: id, br: bufio.NewReader(c)}
}

func (c *recordingConn) Read(p []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(p, c.rest)
		c.rest = c.rest[n:]
		return n, nil
	}
	c.mu.Lock()
	encrypted := c.encrypted
	c.mu.Unlock()
	if encrypted {
		return c.br.Read(p)
	}
	for {
		line, err := c.br.ReadSlice('\n')
		if len(line) == 0 {
			return 0, err
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			err = nil
		}
		c.server.recordCleartext(line)
		atLineStart := !c.midLine
		c.midLine = line[len(line)-1] != '\n'
		if atLineStart && !c.midLine && c.command(line) {
			if err != nil {
				return 0, err
			}
			continue
		}
		n := copy(p, line)
		c.rest = append(c.rest[:0], line[n:]...)
		return n, err
	}
}

// command looks at one complete cleartext line and reports whether it
// consumed it (answered it without go-smtp).
func (c *recordingConn) command(line []byte) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.inData {
		if string(line) == ".\r\n" || string(line) == ".\n" {
			c.inData = false
		}
		return false
	}
	if !bytes.EqualFold(bytes.TrimSpace(line), []byte("STARTTLS")) {
		return false
	}
	switch c.server.behavior.STARTTLS {
	case RejectSTARTTLS:
		_, _ = c.Conn.Write([]byte("454 4.7.0 TLS not available due to temporary reason\r\n"))
		return true
	case BreakHandshake:
		c.breakHandshake()
		return true
	}
	c.pending = true
	return false
}

// breakHandshake promises TLS, waits for the ClientHello, answers with
// something that is not a TLS record and hangs up.
func (c *recordingConn) breakHandshake() {
	_, _ = c.Conn.Write([]byte("220 2.0.0 Ready to start TLS\r\n"))
	c.encrypted = true
	_ = c.Conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 512)
	_, _ = c.br.Read(buf)
	_, _ = c.Conn.Write([]byte("this is not a TLS ServerHello\r\n"))
	_ = c.Conn.Close()
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	if c.pending {
		c.pending = false
		c.encrypted = bytes.HasPrefix(p, []byte("220"))
	}
	if !c.encrypted && bytes.HasPrefix(p, []byte("354")) {
		c.inData = true
	}
	c.mu.Unlock()
	return c.Conn.Write(p)
}

func (s *Server) recordCleartext(b []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleartext.Write(b)
}
