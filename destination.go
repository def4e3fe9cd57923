package sealpost

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"syscall"
)

// ErrDestinationRefused is the failure of a connection sealpost would not
// make: the address is not one a tenant may make the server connect to.
var ErrDestinationRefused = errors.New("destination address not allowed")

// Destinations says which addresses sealpost connects to on a tenant's
// behalf (Event Webhook posts, SMTP delivery). Tenants choose the names,
// so without it any account could make the server reach the operator's own
// network: loopback services, the cloud metadata endpoint, private hosts.
//
// The zero value allows public unicast addresses only; AllowDestinations
// adds the operator's own ranges (127.0.0.0/8 for a local test setup).
type Destinations struct {
	allowed []netip.Prefix
}

// AllowDestinations returns the public-only rule plus the given ranges.
func AllowDestinations(prefixes ...netip.Prefix) Destinations {
	d := Destinations{}
	for _, p := range prefixes {
		d.allowed = append(d.allowed, unmapPrefix(p))
	}
	return d
}

// ParseDestinations parses "CIDR[,CIDR...]" (spaces around commas
// ignored; "" allows nothing beyond public addresses).
func ParseDestinations(list string) (Destinations, error) {
	var prefixes []netip.Prefix
	for field := range strings.SplitSeq(list, ",") {
		field = strings.TrimSpace(field)
		if field == "" {
			continue
		}
		p, err := netip.ParsePrefix(field)
		if err != nil {
			return Destinations{}, fmt.Errorf("%q is not a CIDR range such as 127.0.0.0/8 or fd00::/8", field)
		}
		if p != p.Masked() {
			return Destinations{}, fmt.Errorf("%q has host bits set; did you mean %s?", field, p.Masked())
		}
		prefixes = append(prefixes, p)
	}
	return AllowDestinations(prefixes...), nil
}

// unmapPrefix writes an IPv4-mapped IPv6 range as the IPv4 range it is,
// since addresses are judged unmapped.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// Allows reports whether sealpost may connect to ip.
func (d Destinations) Allows(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() {
		return false
	}
	for _, p := range d.allowed {
		if p.Contains(ip) {
			return true
		}
	}
	return IsPublicUnicast(ip)
}

// refusedIPv4 are the IPv4 ranges that are not public unicast beyond what
// netip's predicates name (loopback, RFC 1918, link-local, multicast).
var refusedIPv4 = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),       // "this network"
	netip.MustParsePrefix("100.64.0.0/10"),   // carrier-grade NAT
	netip.MustParsePrefix("192.0.0.0/24"),    // IETF protocol assignments
	netip.MustParsePrefix("192.0.2.0/24"),    // documentation
	netip.MustParsePrefix("192.88.99.0/24"),  // 6to4 relay anycast (deprecated)
	netip.MustParsePrefix("198.18.0.0/15"),   // benchmarking
	netip.MustParsePrefix("198.51.100.0/24"), // documentation
	netip.MustParsePrefix("203.0.113.0/24"),  // documentation
	netip.MustParsePrefix("240.0.0.0/4"),     // reserved, and the broadcast address
}

var (
	globalIPv6 = netip.MustParsePrefix("2000::/3")
	// Inside 2000::/3 but not a host on the Internet.
	refusedIPv6 = []netip.Prefix{
		netip.MustParsePrefix("2001::/23"),     // IETF protocol assignments, Teredo among them
		netip.MustParsePrefix("2001:db8::/32"), // documentation
		netip.MustParsePrefix("3fff::/20"),     // documentation
	}
	// Ranges that carry an IPv4 address the traffic ends up at: judged
	// by that address.
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// IsPublicUnicast reports whether ip is a unicast address on the public
// Internet. An IPv4-mapped IPv6 address is judged by its IPv4 address, a
// NAT64 (64:ff9b::/96) or 6to4 (2002::/16) one by the IPv4 address it
// embeds.
func IsPublicUnicast(ip netip.Addr) bool {
	ip = ip.WithZone("").Unmap()
	if !ip.IsValid() || ip.IsLoopback() || ip.IsPrivate() || ip.IsUnspecified() ||
		ip.IsLinkLocalUnicast() || ip.IsMulticast() || ip.IsLinkLocalMulticast() || ip.IsInterfaceLocalMulticast() {
		return false
	}
	if ip.Is4() {
		for _, p := range refusedIPv4 {
			if p.Contains(ip) {
				return false
			}
		}
		return true
	}
	b := ip.As16()
	if nat64.Contains(ip) {
		return IsPublicUnicast(netip.AddrFrom4([4]byte(b[12:16])))
	}
	if sixToFour.Contains(ip) {
		return IsPublicUnicast(netip.AddrFrom4([4]byte(b[2:6])))
	}
	if !globalIPv6.Contains(ip) {
		// ULA, site-local, IPv4-compatible, discard, NAT64 local use...:
		// only 2000::/3 is allocated for global unicast.
		return false
	}
	for _, p := range refusedIPv6 {
		if p.Contains(ip) {
			return false
		}
	}
	return true
}

// Control is a net.Dialer Control hook that refuses to connect to an
// address d does not allow. It runs on the address actually dialled, after
// name resolution and before the connection is attempted, so neither a
// name that resolves to a refused address nor one whose answer changes
// between a check and the connection (DNS rebinding) gets past it.
func (d Destinations) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("dialling %s: %w", network, ErrDestinationRefused)
	}
	if !d.Allows(ap.Addr()) {
		// The address stays out of the error: it may reach a tenant.
		return fmt.Errorf("dialling %s: %w", network, ErrDestinationRefused)
	}
	return nil
}

// CheckURLHost refuses a URL whose host is known to be refused before any
// name is resolved: an IP literal outside d, the name localhost or a name
// under .localhost (RFC 6761: loopback), or a numeric host that some
// resolvers read as an IPv4 address (127.1, 2130706433, 0x7f.1). Other
// names are checked when dialled.
func (d Destinations) CheckURLHost(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return ErrDestinationRefused
	}
	host := strings.TrimSuffix(strings.ToLower(u.Hostname()), ".")
	if ip, err := netip.ParseAddr(host); err == nil {
		if !d.Allows(ip) {
			return ErrDestinationRefused
		}
		return nil
	}
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		if !d.Allows(netip.MustParseAddr("127.0.0.1")) && !d.Allows(netip.IPv6Loopback()) {
			return ErrDestinationRefused
		}
		return nil
	}
	if looksNumeric(host) {
		return ErrDestinationRefused
	}
	return nil
}

// looksNumeric reports whether host's last label is a number (decimal,
// octal or 0x hex): no DNS top-level domain is, and inet_aton reads such
// names as IPv4 addresses.
func looksNumeric(host string) bool {
	label := host[strings.LastIndexByte(host, '.')+1:]
	if label == "" {
		return false
	}
	if rest, ok := strings.CutPrefix(label, "0x"); ok {
		label = rest
		for _, r := range label {
			if !strings.ContainsRune("0123456789abcdef", r) {
				return false
			}
		}
		return true
	}
	for _, r := range label {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// AllowsIP is Allows for a net.IP.
func (d Destinations) AllowsIP(ip net.IP) bool {
	a, ok := netip.AddrFromSlice(ip)
	return ok && d.Allows(a)
}
