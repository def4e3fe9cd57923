package sealpost_test

import (
	"bytes"
	"encoding/base64"
	"mime"
	"reflect"
	"strings"
	"testing"

	"github.com/sealpost/sealpost/internal/mimetest"
	"github.com/sealpost/sealpost/internal/sendtest"
)

// binaryFile holds every byte value, CR and LF alone and in pairs, and
// enough bytes for many base64 lines.
func binaryFile() []byte {
	var b []byte
	for i := range 3000 {
		b = append(b, byte(i*7+i/256))
	}
	for i := range 256 {
		b = append(b, byte(i))
	}
	return append(b, '\r', '\n', '\n', '\r', '.', '\r', '\n')
}

func TestMessagesRenderAttachments(t *testing.T) {
	t.Parallel()
	bin := binaryFile()
	png := []byte("\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR fake image")
	const umlautName = "Übersicht „2024“ – 報告, final.pdf"
	longName := strings.Repeat("ü", 126) + "報" // 255 bytes, the most allowed
	body := sendtest.Body(t, map[string]any{
		"personalizations": sendtest.Personalizations(sendtest.To("a@example.com"), sendtest.To("b@example.com")),
		"content": []any{
			map[string]any{"type": "text/plain", "value": "See the files."},
			map[string]any{"type": "text/html", "value": `<p>Logo: <img src="cid:logo@sealpost"></p>`},
		},
		"attachments": []any{
			map[string]any{"content": base64.StdEncoding.EncodeToString(bin), "filename": "data.bin", "type": "application/octet-stream"},
			map[string]any{"content": base64.StdEncoding.EncodeToString(png), "filename": "logo.png", "type": "image/png", "disposition": "inline", "content_id": "logo@sealpost"},
			map[string]any{"content": base64.StdEncoding.EncodeToString([]byte("pdf")), "filename": umlautName, "type": "application/pdf"},
			map[string]any{"content": "eA==", "filename": longName},
			map[string]any{"content": "eQ==", "filename": `quote " and =?utf-8?q?x?= back\slash`},
		},
	})
	msgs := parseAndRender(t, body)
	if len(msgs) != 2 || msgs[0].Body != msgs[1].Body {
		t.Fatalf("%d messages; the attachments must be in the one body they share", len(msgs))
	}
	for _, m := range msgs {
		data := sendtest.Rendered(t, m)
		sendtest.CheckWire(t, data)
		leaves, err := mimetest.Leaves(data)
		if err != nil {
			t.Fatal(err)
		}
		type leaf struct {
			path, mediaType, disposition, fileName, contentID string
			data                                              string
		}
		var got []leaf
		for _, l := range leaves {
			got = append(got, leaf{strings.Join(l.Path, ">"), l.MediaType, l.Disposition, l.FileName, l.Header.Get("Content-ID"), string(l.Data)})
			if l.Header.Get("Content-Transfer-Encoding") == "base64" {
				for _, line := range strings.Split(string(l.Encoded), "\r\n") {
					if len(line) > 76 {
						t.Errorf("%s: base64 line of %d characters", l.FileName, len(line))
					}
				}
			}
		}
		related := "multipart/mixed>multipart/related"
		want := []leaf{
			{related + ">multipart/alternative", "text/plain", "", "", "", "See the files."},
			{related + ">multipart/alternative", "text/html", "", "", "", `<p>Logo: <img src="cid:logo@sealpost"></p>`},
			{related, "image/png", "inline", "logo.png", "<logo@sealpost>", string(png)},
			{"multipart/mixed", "application/octet-stream", "attachment", "data.bin", "", string(bin)},
			{"multipart/mixed", "application/pdf", "attachment", umlautName, "", "pdf"},
			{"multipart/mixed", "application/octet-stream", "attachment", longName, "", "x"},
			{"multipart/mixed", "application/octet-stream", "attachment", `quote " and =?utf-8?q?x?= back\slash`, "", "y"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("leaves\n%q\nwant\n%q", got, want)
		}
		// The related part names its root's type (RFC 2387), and readers
		// that know only RFC 2047 find the name in Content-Type.
		if !bytes.Contains(data, []byte(`multipart/related; boundary=`)) || !bytes.Contains(data, []byte(`type="multipart/alternative"`)) {
			t.Errorf("multipart/related without type parameter:\n%s", data)
		}
		pdf := leaves[4]
		_, params, err := mime.ParseMediaType(pdf.Header.Get("Content-Type"))
		if err != nil {
			t.Fatal(err)
		}
		if name, err := new(mime.WordDecoder).DecodeHeader(params["name"]); err != nil || name != umlautName {
			t.Errorf("Content-Type name %q decodes to %q (%v)", params["name"], name, err)
		}
	}
}

// TestMessagesRenderAttachmentShapes: a single content block with
// attachments, only inline parts, and only ordinary ones.
func TestMessagesRenderAttachmentShapes(t *testing.T) {
	t.Parallel()
	inline := map[string]any{"content": "aW1n", "filename": "i.gif", "type": "image/gif", "disposition": "inline", "content_id": "i"}
	plain := map[string]any{"content": "ZmlsZQ==", "filename": "f.txt", "type": "text/plain"}
	for _, tt := range []struct {
		name  string
		atts  []any
		paths []string
	}{
		{"inline only", []any{inline}, []string{"multipart/related text/plain", "multipart/related image/gif"}},
		{"attachment only", []any{plain}, []string{"multipart/mixed text/plain", "multipart/mixed text/plain"}},
		{"both", []any{plain, inline}, []string{"multipart/mixed>multipart/related text/plain", "multipart/mixed>multipart/related image/gif", "multipart/mixed text/plain"}},
		{"none", []any{}, []string{" text/plain"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			msgs := parseAndRender(t, sendtest.Body(t, map[string]any{"attachments": tt.atts}))
			data := sendtest.Rendered(t, msgs[0])
			sendtest.CheckWire(t, data)
			leaves, err := mimetest.Leaves(data)
			if err != nil {
				t.Fatal(err)
			}
			var paths []string
			for _, l := range leaves {
				paths = append(paths, strings.Join(l.Path, ">")+" "+l.MediaType)
			}
			if !reflect.DeepEqual(paths, tt.paths) {
				t.Fatalf("parts %q, want %q", paths, tt.paths)
			}
			// A message of one part ends its last line, which the
			// delimiter does inside a multipart.
			if strings.TrimSuffix(string(leaves[0].Data), "\r\n") != "Hi there" {
				t.Errorf("content %q, want %q", leaves[0].Data, "Hi there")
			}
		})
	}
}
