package sealpost

import (
	"errors"
	"net"
)

// IsDNSNotFound reports whether err is a lookup's answer that the name,
// or the records asked for, do not exist (net's IsNotFound: NXDOMAIN or
// NODATA), as against a lookup that failed.
func IsDNSNotFound(err error) bool {
	var de *net.DNSError
	return errors.As(err, &de) && de.IsNotFound
}
