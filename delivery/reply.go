package delivery

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits on what a server may send as one reply. RFC 5321 caps a reply line
// at 512 octets; the slack tolerates sloppy servers, the caps keep a hostile
// one from growing our memory without end.
const (
	maxReplyLine  = 4096
	maxReplyLines = 128
)

// reply is one SMTP reply, possibly of several lines.
type reply struct {
	Code int
	// Enhanced is the RFC 3463 status code of the first line ("5.1.1"), or
	// "" when the server gave none or one that contradicts Code's class.
	Enhanced string
	// Lines holds each line's text after the code and separator, with
	// control characters removed and invalid UTF-8 replaced.
	Lines []string
}

// String renders the reply on one line, as events report it:
// "550 5.1.1 no such user". Multi-line replies are joined with spaces.
func (r reply) String() string {
	var b strings.Builder
	b.WriteString(strconv.Itoa(r.Code))
	for _, l := range r.Lines {
		if l == "" {
			continue
		}
		b.WriteByte(' ')
		b.WriteString(l)
	}
	return b.String()
}

// Class is the first digit of the code: 2, 3, 4 or 5.
func (r reply) Class() int { return r.Code / 100 }

// EnhancedOrDerived returns the enhanced status code, or "class.0.0" when the
// server gave none.
func (r reply) EnhancedOrDerived() string {
	if r.Enhanced != "" {
		return r.Enhanced
	}
	return strconv.Itoa(r.Class()) + ".0.0"
}

// errMalformedReply marks a reply that does not follow RFC 5321's grammar;
// the session cannot continue after one.
var errMalformedReply = errors.New("malformed SMTP reply")

// readReply reads one complete reply. It is the parser for untrusted input:
// it never panics and bounds what it reads.
func readReply(r *bufio.Reader) (reply, error) {
	var rep reply
	for n := 0; ; n++ {
		if n == maxReplyLines {
			return reply{}, fmt.Errorf("%w: more than %d lines", errMalformedReply, maxReplyLines)
		}
		line, err := readLine(r)
		if err != nil {
			return reply{}, err
		}
		code, last, text, err := parseReplyLine(line)
		if err != nil {
			return reply{}, err
		}
		if n == 0 {
			rep.Code = code
		} else if code != rep.Code {
			return reply{}, fmt.Errorf("%w: code %d in a continuation of a %d reply", errMalformedReply, code, rep.Code)
		}
		rep.Lines = append(rep.Lines, text)
		if last {
			break
		}
	}
	rep.Enhanced = parseEnhanced(rep.Code, rep.Lines[0])
	return rep, nil
}

// readLine returns one line without its line end, tolerating a bare LF.
func readLine(r *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		chunk, err := r.ReadSlice('\n')
		line = append(line, chunk...)
		if len(line) > maxReplyLine {
			return nil, fmt.Errorf("%w: line longer than %d bytes", errMalformedReply, maxReplyLine)
		}
		if err == nil {
			break
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		return nil, err
	}
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	return line, nil
}

// parseReplyLine splits "250-text", "250 text" or "250".
func parseReplyLine(line []byte) (code int, last bool, text string, err error) {
	if len(line) < 3 {
		return 0, false, "", fmt.Errorf("%w: line %q too short", errMalformedReply, clean(line))
	}
	for i := range 3 {
		if line[i] < '0' || line[i] > '9' {
			return 0, false, "", fmt.Errorf("%w: no code in %q", errMalformedReply, clean(line))
		}
	}
	code = int(line[0]-'0')*100 + int(line[1]-'0')*10 + int(line[2]-'0')
	if code < 200 || code > 599 || line[1] > '5' {
		return 0, false, "", fmt.Errorf("%w: code %d out of range", errMalformedReply, code)
	}
	if len(line) == 3 {
		return code, true, "", nil
	}
	switch line[3] {
	case ' ':
		last = true
	case '-':
	default:
		return 0, false, "", fmt.Errorf("%w: bad separator in %q", errMalformedReply, clean(line))
	}
	return code, last, clean(line[4:]), nil
}

// clean makes reply text safe to log and to put into events and commands:
// no control characters (CR and LF included), valid UTF-8.
func clean(b []byte) string {
	s := strings.ToValidUTF8(string(b), string(utf8.RuneError))
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

// parseEnhanced finds an RFC 3463 code at the start of text. RFC 2034 makes
// servers that advertise ENHANCEDSTATUSCODES put it there; servers that do
// not advertise it often do the same, so the code is read regardless, but
// only when its class agrees with the basic code.
func parseEnhanced(code int, text string) string {
	word, _, _ := strings.Cut(text, " ")
	parts := strings.Split(word, ".")
	if len(parts) != 3 {
		return ""
	}
	if parts[0] != strconv.Itoa(code/100) || (code/100 != 2 && code/100 != 4 && code/100 != 5) {
		return ""
	}
	for _, p := range parts[1:] {
		if len(p) == 0 || len(p) > 3 {
			return ""
		}
		for i := range len(p) {
			if p[i] < '0' || p[i] > '9' {
				return ""
			}
		}
	}
	return word
}
