package sealpost

import (
	"encoding/binary"
	"errors"
)

// A layout is a sequence of pieces, each starting with a uvarint h. An even
// h is followed by h/2 bytes of the message's own; an odd h stands for the
// slice of the body at offset h/2 whose length is the uvarint that follows.
// Pieces are kept as few as possible: adjacent own bytes, and slices that
// continue each other, are merged.

// layoutWriter builds a layout.
type layoutWriter struct {
	out []byte
	own []byte // own bytes not yet written out
	// The body slice not yet written out; refLen 0 when there is none.
	refOff, refLen int
}

func (w *layoutWriter) writeOwn(p []byte) {
	if len(p) == 0 {
		return
	}
	w.flushRef()
	w.own = append(w.own, p...)
}

func (w *layoutWriter) writeBody(off, n int) {
	if n == 0 {
		return
	}
	w.flushOwn()
	if w.refLen > 0 && w.refOff+w.refLen == off {
		w.refLen += n
		return
	}
	w.flushRef()
	w.refOff, w.refLen = off, n
}

func (w *layoutWriter) flushOwn() {
	if len(w.own) == 0 {
		return
	}
	w.out = binary.AppendUvarint(w.out, uint64(len(w.own))<<1)
	w.out = append(w.out, w.own...)
	w.own = w.own[:0]
}

func (w *layoutWriter) flushRef() {
	if w.refLen == 0 {
		return
	}
	w.out = binary.AppendUvarint(w.out, uint64(w.refOff)<<1|1)
	w.out = binary.AppendUvarint(w.out, uint64(w.refLen))
	w.refLen = 0
}

// layout returns the finished layout.
func (w *layoutWriter) layout() []byte {
	w.flushOwn()
	w.flushRef()
	return w.out
}

// Render returns the complete message, Layout applied to Body. A message
// without a layout is its body, returned without a copy. It fails only on
// a layout that does not fit the body, which a store can hand back only if
// it was damaged.
func (m *Message) Render() ([]byte, error) {
	var body []byte
	if m.Body != nil {
		body = m.Body.Data
	}
	if len(m.Layout) == 0 {
		return body, nil
	}
	size, err := walkLayout(m.Layout, body, nil)
	if err != nil {
		return nil, Errorf(EINTERNAL, "rendering message %d: %v", m.ID, err)
	}
	out := make([]byte, 0, size)
	if _, err := walkLayout(m.Layout, body, &out); err != nil {
		return nil, Errorf(EINTERNAL, "rendering message %d: %v", m.ID, err)
	}
	return out, nil
}

// walkLayout checks layout against body and returns the size of the
// message it makes; when out is not nil, it appends the message to *out.
func walkLayout(layout, body []byte, out *[]byte) (int, error) {
	size := 0
	for len(layout) > 0 {
		h, n := binary.Uvarint(layout)
		if n <= 0 {
			return 0, errors.New("truncated piece header")
		}
		layout = layout[n:]
		var piece []byte
		if h&1 == 0 {
			if h>>1 > uint64(len(layout)) {
				return 0, errors.New("own bytes run past the layout")
			}
			piece, layout = layout[:h>>1], layout[h>>1:]
		} else {
			length, n := binary.Uvarint(layout)
			if n <= 0 {
				return 0, errors.New("truncated slice length")
			}
			layout = layout[n:]
			off := h >> 1
			if off > uint64(len(body)) || length > uint64(len(body))-off {
				return 0, errors.New("slice outside the body")
			}
			piece = body[off : off+length]
		}
		size += len(piece)
		if out != nil {
			*out = append(*out, piece...)
		}
	}
	return size, nil
}
