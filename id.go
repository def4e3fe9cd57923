package sealpost

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"time"
)

// sortableURLSafe is base64's URL-safe alphabet in ASCII order, so that the
// encoding sorts as the bytes do.
var sortableURLSafe = base64.NewEncoding("-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz").WithPadding(base64.NoPadding)

// newURLSafeID returns 22 URL-safe base64 characters of 16 bytes: the time
// in milliseconds (6 bytes) and 10 random bytes. Ids made close in time
// sort close together, so the indexes that hold them take new ids on a few
// pages instead of one page anywhere per id; 80 random bits keep them
// unguessable and unique.
func newURLSafeID() (string, error) {
	var b [16]byte
	var ms [8]byte
	binary.BigEndian.PutUint64(ms[:], uint64(time.Now().UnixMilli()))
	copy(b[:6], ms[2:])
	if _, err := rand.Read(b[6:]); err != nil {
		return "", Errorf(EINTERNAL, "generating id: %v", err)
	}
	return sortableURLSafe.EncodeToString(b[:]), nil
}

// NewXMessageID returns a fresh X-Message-Id: 22 URL-safe base64 characters.
func NewXMessageID() (string, error) { return newURLSafeID() }
