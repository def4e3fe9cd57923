package delivery

import (
	"net"
	"testing"
)

// RFC 5321 5.1 makes an MX record's value a host name; an IP address there
// is a misconfiguration (Postfix refuses it too). Following it would check
// the certificate against an address instead of a host name found in DNS,
// and with the system resolver, which "resolves" an IP literal to itself,
// send mail to wherever the record points without any name to verify.
func TestRouteSkipsIPLiteralMXHosts(t *testing.T) {
	t.Parallel()
	res := &fakeResolver{mx: map[string][]*net.MX{
		"literal.test": {{Host: "192.0.2.1.", Pref: 10}, {Host: "mx.literal.test.", Pref: 20}},
		"onlyip.test":  {{Host: "192.0.2.1", Pref: 10}, {Host: "2001:db8::1", Pref: 20}},
	}}
	c := &Client{Resolver: res, Destinations: loopbackOnly()}

	hosts, fail := c.route(t.Context(), "literal.test")
	if fail != nil || len(hosts) != 1 || hosts[0].name != "mx.literal.test" {
		t.Errorf("literal.test: got %+v %+v, want only mx.literal.test", hosts, fail)
	}
	hosts, fail = c.route(t.Context(), "onlyip.test")
	if fail == nil || fail.Status != Deferred || len(hosts) != 0 {
		t.Errorf("onlyip.test: got %+v %+v, want no hosts and a deferral", hosts, fail)
	}
}
