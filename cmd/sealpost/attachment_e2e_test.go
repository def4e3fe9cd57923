package main

import (
	"bytes"
	"encoding/base64"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendgrid/sendgrid-go"
	"github.com/sendgrid/sendgrid-go/helpers/mail"

	"github.com/sealpost/sealpost/delivery/mxtest"
	"github.com/sealpost/sealpost/internal/mimetest"
)

// attachmentFiles are what the end-to-end tests attach: a binary file
// holding every byte value, large enough for many base64 lines and a
// reader's buffers, and a small PNG shown inline.
type attachmentFiles struct {
	binary, image []byte
}

const (
	binaryName = "Übersicht 2024 – 報告.bin"
	imageName  = "logo.png"
	imageCID   = "logo@sealpost.test"
)

func newAttachmentFiles() attachmentFiles {
	rng := rand.New(rand.NewPCG(12, 34))
	bin := make([]byte, 300<<10)
	for i := range bin {
		bin[i] = byte(rng.Uint32())
	}
	for i := range 256 {
		bin[i] = byte(i)
	}
	// A PNG signature and an IHDR chunk for a 1×1 image.
	png, _ := base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==")
	return attachmentFiles{binary: bin, image: png}
}

// checkAttachmentsArrived waits until mx accepted want copies of the
// message whose subject holds marker, and checks that each decodes, with
// mime/multipart, to the text, the HTML that refers to the image, the
// inline image and the binary file, bytes for bytes.
func checkAttachmentsArrived(t *testing.T, mx *mxtest.Server, marker string, want int, files attachmentFiles) {
	t.Helper()
	var got []mxtest.Delivery
	waitFor(t, "the messages with attachments at the MX", 60*time.Second, func() bool {
		got = got[:0]
		for _, d := range mx.Accepted() {
			if bytes.Contains(d.Data, []byte(marker)) {
				got = append(got, d)
			}
		}
		return len(got) >= want
	})
	if len(got) != want {
		t.Fatalf("%d copies of %q, want %d", len(got), marker, want)
	}
	for _, d := range got {
		leaves, err := mimetest.Leaves(d.Data)
		if err != nil {
			t.Fatalf("message to %v does not parse: %v", d.To, err)
		}
		if len(leaves) != 4 {
			t.Fatalf("message to %v has %d parts, want 4", d.To, len(leaves))
		}
		text, html, image, binary := leaves[0], leaves[1], leaves[2], leaves[3]
		related := "multipart/mixed>multipart/related"
		if strings.Join(text.Path, ">") != related+">multipart/alternative" || text.MediaType != "text/plain" || html.MediaType != "text/html" ||
			!bytes.Contains(html.Data, []byte(`src="cid:`+imageCID+`"`)) {
			t.Errorf("content parts: %s %s %s, html %q", text.Path, text.MediaType, html.MediaType, html.Data)
		}
		if strings.Join(image.Path, ">") != related || image.MediaType != "image/png" || image.Disposition != "inline" ||
			image.FileName != imageName || image.Header.Get("Content-ID") != "<"+imageCID+">" || !bytes.Equal(image.Data, files.image) {
			t.Errorf("inline image arrived as %s %s %s %q %q, %d bytes", image.Path, image.MediaType, image.Disposition, image.FileName, image.Header.Get("Content-ID"), len(image.Data))
		}
		if strings.Join(binary.Path, ">") != "multipart/mixed" || binary.MediaType != "application/octet-stream" || binary.Disposition != "attachment" ||
			binary.FileName != binaryName || !bytes.Equal(binary.Data, files.binary) {
			t.Errorf("binary file arrived as %s %s %s %q, %d bytes (want %d, equal %v)", binary.Path, binary.MediaType, binary.Disposition, binary.FileName,
				len(binary.Data), len(files.binary), bytes.Equal(binary.Data, files.binary))
		}
		for _, l := range [][]byte{image.Encoded, binary.Encoded} {
			for _, line := range bytes.Split(l, []byte("\r\n")) {
				if len(line) > 76 {
					t.Fatalf("base64 line of %d characters", len(line))
				}
			}
		}
	}
}

// TestAttachmentsWithOfficialGoClient: a mail send built with
// sendgrid-go's mail.NewAttachment, to two personalizations, reaches the
// MX as the files that were attached.
func TestAttachmentsWithOfficialGoClient(t *testing.T) {
	t.Parallel()
	h := mxtest.New(t)
	mx := h.AddMX("files.test", 10, mxtest.Behavior{})
	m, key := destinationMain(t, h, "127.0.0.0/8")
	files := newAttachmentFiles()

	msg := mail.NewV3Mail()
	msg.SetFrom(mail.NewEmail("Sender", "sender@sealpost.test"))
	msg.Subject = "go client attachments"
	for _, a := range []string{"ann@files.test", "bob@files.test"} {
		p := mail.NewPersonalization()
		p.AddTos(mail.NewEmail("", a))
		msg.AddPersonalizations(p)
	}
	msg.AddContent(mail.NewContent("text/plain", "The files."), mail.NewContent("text/html", `<p>Logo: <img src="cid:`+imageCID+`"></p>`))
	binary := mail.NewAttachment()
	binary.SetContent(base64.StdEncoding.EncodeToString(files.binary))
	binary.SetType("application/octet-stream")
	binary.SetFilename(binaryName)
	binary.SetDisposition("attachment")
	image := mail.NewAttachment()
	image.SetContent(base64.StdEncoding.EncodeToString(files.image))
	image.SetType("image/png")
	image.SetFilename(imageName)
	image.SetDisposition("inline")
	image.SetContentID(imageCID)
	msg.AddAttachment(binary, image)

	client := sendgrid.NewSendClient(key)
	client.Request.BaseURL = m.URL() + "/v3/mail/send"
	resp, err := client.Send(msg)
	if err != nil || resp.StatusCode != 202 {
		t.Fatalf("sending with sendgrid-go: %v, %d %s", err, resp.StatusCode, resp.Body)
	}
	checkAttachmentsArrived(t, mx, "go client attachments", 2, files)

	// And a refusal in SendGrid's words, as the client sees it.
	bad := mail.NewAttachment()
	bad.SetContent("not base64!")
	bad.SetFilename("x.txt")
	msg.Attachments = []*mail.Attachment{bad}
	resp, err = client.Send(msg)
	if err != nil || resp.StatusCode != 400 ||
		resp.Body != `{"errors":[{"field":"attachments.0.content","message":"The attachment content must be base64 encoded."}]}` {
		t.Fatalf("bad attachment: %v, %d %s", err, resp.StatusCode, resp.Body)
	}
}

// TestAttachmentsWithOfficialNodeClient does the same with Node's
// @sendgrid/mail, when SEALPOST_NODE_MODULES names a node_modules
// directory that has it (scripts/node-client-check.sh installs one).
func TestAttachmentsWithOfficialNodeClient(t *testing.T) {
	t.Parallel()
	modules := os.Getenv("SEALPOST_NODE_MODULES")
	if modules == "" {
		t.Skip("SEALPOST_NODE_MODULES is not set; scripts/node-client-check.sh runs this test")
	}
	node, err := exec.LookPath("node")
	if err != nil {
		t.Fatal("SEALPOST_NODE_MODULES is set but node is not on PATH")
	}
	h := mxtest.New(t)
	mx := h.AddMX("files.test", 10, mxtest.Behavior{})
	m, key := destinationMain(t, h, "127.0.0.0/8")
	files := newAttachmentFiles()
	dir := t.TempDir()
	for name, data := range map[string][]byte{"binary": files.binary, "image": files.image} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	script, err := filepath.Abs("../../scripts/node-client/attachments.js")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), node, script)
	cmd.Env = append(os.Environ(),
		"NODE_PATH="+modules,
		"SENDGRID_API_KEY="+key,
		"SEALPOST_URL="+m.URL()+"/",
		"ATTACH_DIR="+dir,
		"ATTACH_BINARY_NAME="+binaryName,
		"ATTACH_IMAGE_NAME="+imageName,
		"ATTACH_IMAGE_CID="+imageCID,
	)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("node %s: %v\n%s", script, err, out)
	}
	t.Logf("%s", out)
	checkAttachmentsArrived(t, mx, "node client attachments", 2, files)
}
