package mxtest

import (
	"bytes"
	"testing"
)

func TestStripperRewritesEHLOReplies(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		reply string
		want  string
	}{
		{"middle line", "250-mx.test\r\n250-STARTTLS\r\n250 SIZE\r\n", "250-mx.test\r\n250 SIZE\r\n"},
		{"last line", "250-mx.test\r\n250-PIPELINING\r\n250 STARTTLS\r\n", "250-mx.test\r\n250 PIPELINING\r\n"},
		{"lower case, only extension", "250-mx.test\r\n250 starttls\r\n", "250 mx.test\r\n"},
		{"no STARTTLS", "250-mx.test\r\n250 SIZE\r\n", "250-mx.test\r\n250 SIZE\r\n"},
		{"single line", "250 mx.test\r\n", "250 mx.test\r\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		st := &stripper{client: &out}
		var lines [][]byte
		for _, l := range bytes.SplitAfter([]byte(tt.reply), []byte("\n")) {
			if len(l) > 0 {
				lines = append(lines, l)
			}
		}
		if err := st.forwardReply(lines); err != nil {
			t.Fatal(err)
		}
		if out.String() != tt.want {
			t.Errorf("%s: forwarded %q, want %q", tt.name, out.String(), tt.want)
		}
	}
}
