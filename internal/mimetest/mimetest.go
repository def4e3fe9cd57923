// Package mimetest takes a rendered message apart for tests: every leaf
// part, its place in the MIME tree and its decoded bytes.
package mimetest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// Leaf is one non-multipart part of a message.
type Leaf struct {
	// Path is the media types of the multiparts that hold the leaf, from
	// the message down, e.g. [multipart/mixed multipart/related].
	Path        []string
	Header      textproto.MIMEHeader
	MediaType   string
	Disposition string
	// FileName is the decoded file name from Content-Disposition (RFC
	// 2231 as mime/multipart reads it), or "".
	FileName string
	// Data is the decoded body.
	Data []byte
	// Encoded is the body as it was on the wire.
	Encoded []byte
}

// Leaves parses a complete message and returns its leaves in order.
func Leaves(message []byte) ([]Leaf, error) {
	msg, err := mail.ReadMessage(bytes.NewReader(message))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(msg.Body)
	if err != nil {
		return nil, err
	}
	return leaves(nil, textproto.MIMEHeader(msg.Header), body)
}

func leaves(path []string, h textproto.MIMEHeader, body []byte) ([]Leaf, error) {
	mt, params, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err != nil {
		return nil, fmt.Errorf("Content-Type %q: %w", h.Get("Content-Type"), err)
	}
	if !strings.HasPrefix(mt, "multipart/") {
		l := Leaf{Path: path, Header: h, MediaType: mt, Encoded: body}
		if cd := h.Get("Content-Disposition"); cd != "" {
			d, dp, err := mime.ParseMediaType(cd)
			if err != nil {
				return nil, fmt.Errorf("Content-Disposition %q: %w", cd, err)
			}
			l.Disposition, l.FileName = d, dp["filename"]
		}
		switch cte := strings.ToLower(h.Get("Content-Transfer-Encoding")); cte {
		case "base64":
			l.Data, err = io.ReadAll(base64.NewDecoder(base64.StdEncoding, bytes.NewReader(body)))
		case "quoted-printable":
			l.Data, err = io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		case "", "7bit", "8bit", "binary":
			l.Data = body
		default:
			err = fmt.Errorf("Content-Transfer-Encoding %q", cte)
		}
		if err != nil {
			return nil, err
		}
		return []Leaf{l}, nil
	}
	var out []Leaf
	r := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	for {
		// RawPart: NextPart would decode quoted-printable and hide it.
		p, err := r.NextRawPart()
		if err == io.EOF {
			if len(out) == 0 {
				return nil, fmt.Errorf("%s without parts", mt)
			}
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(p)
		if err != nil {
			return nil, err
		}
		sub, err := leaves(append(path[:len(path):len(path)], mt), p.Header, b)
		if err != nil {
			return nil, err
		}
		out = append(out, sub...)
	}
}
