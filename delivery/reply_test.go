package delivery

import (
	"bufio"
	"slices"
	"strings"
	"testing"
)

func TestReadReply(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		code     int
		enhanced string
		lines    []string
		str      string
		err      bool
	}{
		{in: "250 OK\r\n", code: 250, lines: []string{"OK"}, str: "250 OK"},
		{in: "250\r\n", code: 250, lines: []string{""}, str: "250"},
		{in: "250 2.0.0 Ok: queued as X\r\n", code: 250, enhanced: "2.0.0", lines: []string{"2.0.0 Ok: queued as X"}, str: "250 2.0.0 Ok: queued as X"},
		{in: "550 5.1.1 no such user\r\n", code: 550, enhanced: "5.1.1", lines: []string{"5.1.1 no such user"}, str: "550 5.1.1 no such user"},
		{in: "550 5.1.10 null\r\n", code: 550, enhanced: "5.1.10", lines: []string{"5.1.10 null"}, str: "550 5.1.10 null"},
		{in: "550 4.1.1 class disagrees\r\n", code: 550, lines: []string{"4.1.1 class disagrees"}, str: "550 4.1.1 class disagrees"},
		{in: "550 5.1.1234 too long\r\n", code: 550, lines: []string{"5.1.1234 too long"}, str: "550 5.1.1234 too long"},
		{in: "451 4.7.1\r\n", code: 451, enhanced: "4.7.1", lines: []string{"4.7.1"}, str: "451 4.7.1"},
		{in: "250-mx.test hello\r\n250-PIPELINING\r\n250 STARTTLS\r\n", code: 250, lines: []string{"mx.test hello", "PIPELINING", "STARTTLS"}, str: "250 mx.test hello PIPELINING STARTTLS"},
		{in: "250-first\n250 bare LF\n", code: 250, lines: []string{"first", "bare LF"}, str: "250 first bare LF"},
		{in: "554 5.7.1 tab\there\x00nul\x1b[31m\r\n", code: 554, enhanced: "5.7.1", lines: []string{"5.7.1 tabherenul[31m"}, str: "554 5.7.1 tabherenul[31m"},
		{in: "250 bad utf8 \xff\r\n", code: 250, lines: []string{"bad utf8 \uFFFD"}, str: "250 bad utf8 \uFFFD"},
		{in: "250-one\r\n251 other code\r\n", err: true},
		{in: "25\r\n", err: true},
		{in: "abc hello\r\n", err: true},
		{in: "150 too low\r\n", err: true},
		{in: "650 too high\r\n", err: true},
		{in: "260 bad second digit\r\n", err: true},
		{in: "250xno separator\r\n", err: true},
		{in: "250-unterminated\r\n", err: true},
		{in: "", err: true},
		{in: "250 " + strings.Repeat("x", maxReplyLine) + "\r\n", err: true},
		{in: strings.Repeat("250-x\r\n", maxReplyLines+1) + "250 end\r\n", err: true},
	}
	for _, tt := range tests {
		got, err := readReply(bufio.NewReader(strings.NewReader(tt.in)))
		if tt.err {
			if err == nil {
				t.Errorf("readReply(%q) = %+v, want an error", tt.in, got)
			}
			continue
		}
		if err != nil {
			t.Errorf("readReply(%q): %v", tt.in, err)
			continue
		}
		if got.Code != tt.code || got.Enhanced != tt.enhanced || !slices.Equal(got.Lines, tt.lines) || got.String() != tt.str {
			t.Errorf("readReply(%q) = %+v %q, want %d %q %q %q", tt.in, got, got.String(), tt.code, tt.enhanced, tt.lines, tt.str)
		}
	}
}

func TestReadReplySequence(t *testing.T) {
	t.Parallel()
	r := bufio.NewReader(strings.NewReader("220 hi\r\n250-a\r\n250 b\r\n"))
	first, err := readReply(r)
	if err != nil || first.Code != 220 {
		t.Fatalf("first = %+v, %v", first, err)
	}
	second, err := readReply(r)
	if err != nil || second.String() != "250 a b" {
		t.Fatalf("second = %+v, %v", second, err)
	}
}

func TestEnhancedOrDerived(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		r    reply
		want string
	}{
		{reply{Code: 250}, "2.0.0"},
		{reply{Code: 451}, "4.0.0"},
		{reply{Code: 550, Enhanced: "5.1.1"}, "5.1.1"},
	} {
		if got := tt.r.EnhancedOrDerived(); got != tt.want {
			t.Errorf("%+v: %q, want %q", tt.r, got, tt.want)
		}
	}
}

func FuzzParseReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 no\r\n", "421\r\n", "250-\r\n250 \r\n",
		"250 2.0.0\r\n", "554 5.7.1 \xff\x00\r\n", "250-x\n250 y\n", "999 x\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rep, err := readReply(bufio.NewReaderSize(strings.NewReader(string(data)), 16))
		if err != nil {
			if rep.Code != 0 || rep.Lines != nil {
				t.Fatalf("error %v with a reply %+v", err, rep)
			}
			return
		}
		if rep.Code < 200 || rep.Code > 559 {
			t.Fatalf("code %d out of range", rep.Code)
		}
		if len(rep.Lines) == 0 || len(rep.Lines) > maxReplyLines {
			t.Fatalf("%d lines", len(rep.Lines))
		}
		s := rep.String()
		if strings.ContainsAny(s, "\r\n\x00") {
			t.Fatalf("String() has control characters: %q", s)
		}
		if e := rep.Enhanced; e != "" {
			if e[0]-'0' != byte(rep.Class()) || strings.Count(e, ".") != 2 {
				t.Fatalf("enhanced %q for code %d", e, rep.Code)
			}
		}
		if es := rep.EnhancedOrDerived(); es[0]-'0' != byte(rep.Class()) {
			t.Fatalf("derived %q for %d", es, rep.Code)
		}
	})
}
