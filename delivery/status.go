package delivery

// RFC 3463 enhanced status codes this package gives results that have no
// server reply to take one from, named where more than one failure uses them.
const (
	// 4.3.0, other mail system status: this server cannot make the attempt.
	statusSystemFailure = "4.3.0"
	// 4.4.1, no answer from host: no connection to the MX host.
	statusNoAnswer = "4.4.1"
	// 4.4.2, bad connection: the session broke off or timed out.
	statusBadConnection = "4.4.2"
	// 4.4.3, directory server failure: DNS or a published policy gives no usable answer now.
	statusDirectoryFailure = "4.4.3"
	// 5.1.2, bad destination system address: the recipient domain is invalid or does not exist.
	statusBadDestinationDomain = "5.1.2"
	// 5.4.4, unable to route: every MX host is in a range the server refuses.
	statusNoAllowedHost = "5.4.4"
)
