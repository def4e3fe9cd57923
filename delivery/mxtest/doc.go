// Package mxtest is a world of fake mail exchangers for tests of outbound
// delivery: an authoritative DNS server, a test certificate authority, fake
// MX servers whose TLS and replies are chosen per server, and on-path
// attacker proxies (see ProxyMode) that strip STARTTLS, refuse it
// themselves, terminate TLS at 1.0 only, or terminate it with a certificate
// for another name, recording what they read and forward. Every server records what really reached it —
// each transaction with its TLS version, and every byte it read before TLS —
// so a test can prove that nothing was sent in clear.
//
// All servers and proxies of one Harness listen on the same TCP port, each on
// its own address in a random /24 of 127.0.0.0/8. That mirrors the real
// world (every MX listens on 25) and lets one port setting reach them all.
//
// In-process tests give the delivery client the harness directly:
//
//	h := mxtest.New(t)
//	mx := h.AddMX("example.test", 10, mxtest.Behavior{Cert: mxtest.CertExpired})
//	c := &delivery.Client{Resolver: delivery.NewResolver(h.DNSAddr()), Port: h.Port(), RootCAs: h.CertPool(),
//		Destinations: sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))}
//
// (The client connects to no loopback address unless told it may.)
//
// End-to-end tests start the real binary pointed at the same world:
//
//	h := mxtest.New(t)
//	mx := h.AddMX("example.test", 10, mxtest.Behavior{})
//	cmd := exec.CommandContext(ctx, sealpostBinary, "serve",
//		"--dns-server", h.DNSAddr(),
//		"--smtp-port", strconv.Itoa(h.Port()),
//		"--tls-ca-file", h.CAFile(),
//		"--allow-destinations", "127.0.0.0/8",
//		...)
//
// then send mail through the HTTP API and assert on mx.Accepted(),
// mx.CleartextBytes() and the webhook events. The binary trusts the harness
// CA in addition to the system roots, so CertValid servers verify while
// CertSelfSigned, CertWrongName and CertExpired ones fail exactly as a real
// MX with such a certificate would. Harness state lives in the test process;
// the binary only sees DNS answers and SMTP servers over real sockets.
package mxtest
