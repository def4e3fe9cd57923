package sealpost_test

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sealpost/sealpost"
)

func TestDestinationsAllows(t *testing.T) {
	t.Parallel()
	public := sealpost.Destinations{}
	loopback := sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))
	private, err := sealpost.ParseDestinations("10.1.0.0/16, fd00::/8,::ffff:192.168.7.0/120")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		addr                      string
		public, loopback, private bool
	}{
		// Public unicast.
		{addr: "8.8.8.8", public: true, loopback: true, private: true},
		{addr: "1.1.1.1", public: true, loopback: true, private: true},
		{addr: "2606:4700:4700::1111", public: true, loopback: true, private: true},
		{addr: "::ffff:8.8.8.8", public: true, loopback: true, private: true},
		{addr: "64:ff9b::808:808", public: true, loopback: true, private: true}, // NAT64 of 8.8.8.8
		{addr: "2002:808:808::1", public: true, loopback: true, private: true},  // 6to4 of 8.8.8.8
		{addr: "100.63.255.255", public: true, loopback: true, private: true},
		{addr: "100.128.0.0", public: true, loopback: true, private: true},
		{addr: "223.255.255.255", public: true, loopback: true, private: true},
		// Loopback.
		{addr: "127.0.0.1", loopback: true},
		{addr: "127.255.255.254", loopback: true},
		{addr: "::ffff:127.0.0.1", loopback: true},
		{addr: "::1"},
		{addr: "64:ff9b::7f00:1"}, // NAT64 of 127.0.0.1
		{addr: "2002:7f00:1::1"},  // 6to4 of 127.0.0.1
		{addr: "::127.0.0.1"},     // IPv4-compatible
		// Private and shared.
		{addr: "10.0.0.1"},
		{addr: "10.1.2.3", private: true},
		{addr: "172.16.0.1"},
		{addr: "172.31.255.255"},
		{addr: "192.168.1.1"},
		{addr: "192.168.7.9", private: true},
		{addr: "::ffff:192.168.7.9", private: true},
		{addr: "100.64.0.1"},
		{addr: "fc00::1"},
		{addr: "fd12::1", private: true},
		{addr: "fec0::1"},
		// Link-local, the metadata endpoint among them.
		{addr: "169.254.169.254"},
		{addr: "::ffff:169.254.169.254"},
		{addr: "fe80::1"},
		{addr: "fe80::1%eth0"},
		{addr: "fd00:ec2::254", private: true}, // allowed by fd00::/8
		// Unspecified, "this network", broadcast, multicast.
		{addr: "0.0.0.0"},
		{addr: "0.1.2.3"},
		{addr: "::"},
		{addr: "255.255.255.255"},
		{addr: "224.0.0.1"},
		{addr: "239.255.255.250"},
		{addr: "ff02::1"},
		{addr: "ff0e::1"},
		// Reserved, documentation, benchmarking.
		{addr: "192.0.0.8"},
		{addr: "192.0.2.1"},
		{addr: "198.18.0.1"},
		{addr: "198.19.255.255"},
		{addr: "198.51.100.1"},
		{addr: "203.0.113.1"},
		{addr: "240.0.0.1"},
		{addr: "2001:db8::1"},
		{addr: "2001::1"}, // Teredo
		{addr: "100::1"},  // discard
		{addr: "4000::1"}, // outside global unicast
		{addr: "3fff::1"}, // documentation
	}
	for _, tt := range tests {
		ip := netip.MustParseAddr(tt.addr)
		for _, c := range []struct {
			name string
			d    sealpost.Destinations
			want bool
		}{{"public", public, tt.public}, {"loopback", loopback, tt.loopback}, {"private", private, tt.private}} {
			if got := c.d.Allows(ip); got != c.want {
				t.Errorf("%s rule: Allows(%s) = %v, want %v", c.name, tt.addr, got, c.want)
			}
		}
	}
	if public.Allows(netip.Addr{}) {
		t.Error("the zero address is allowed")
	}
}

func TestParseDestinations(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"127.0.0.1", "10.0.0.0/33", "localhost/8", "127.0.0.1/8", "fd00::/129", "x"} {
		if _, err := sealpost.ParseDestinations(bad); err == nil {
			t.Errorf("ParseDestinations(%q) accepted", bad)
		} else if strings.Contains(err.Error(), "\n") {
			t.Errorf("ParseDestinations(%q): error spans lines: %q", bad, err)
		}
	}
	for _, good := range []string{"", "127.0.0.0/8", " 127.0.0.0/8 , ::1/128 ", "0.0.0.0/0"} {
		if _, err := sealpost.ParseDestinations(good); err != nil {
			t.Errorf("ParseDestinations(%q): %v", good, err)
		}
	}
}

func TestDestinationsCheckURLHost(t *testing.T) {
	t.Parallel()
	public := sealpost.Destinations{}
	loopback := sealpost.AllowDestinations(netip.MustParsePrefix("127.0.0.0/8"))
	tests := []struct {
		url              string
		public, loopback bool
	}{
		{url: "https://example.com/hook", public: true, loopback: true},
		{url: "https://8.8.8.8:8443/hook", public: true, loopback: true},
		{url: "https://[2606:4700::1]/hook", public: true, loopback: true},
		{url: "http://169.254.169.254/latest/meta-data/"},
		{url: "http://127.0.0.1:8080/", loopback: true},
		{url: "http://localhost/", loopback: true},
		{url: "http://LOCALHOST./", loopback: true},
		{url: "http://api.localhost:9000/", loopback: true},
		{url: "http://[::1]/"},
		{url: "http://[::ffff:127.0.0.1]/", loopback: true},
		{url: "http://[::ffff:7f00:1]/", loopback: true},
		{url: "http://0.0.0.0/"},
		{url: "http://10.0.0.1/"},
		{url: "http://[fe80::1%25eth0]/"},
		{url: "http://127.1/"},
		{url: "http://2130706433/"},
		{url: "http://0x7f.1/"},
		{url: "http://0x7f000001/"},
	}
	for _, tt := range tests {
		for _, c := range []struct {
			name string
			d    sealpost.Destinations
			want bool
		}{{"public", public, tt.public}, {"loopback", loopback, tt.loopback}} {
			err := c.d.CheckURLHost(tt.url)
			if (err == nil) != c.want {
				t.Errorf("%s rule: CheckURLHost(%s) = %v, want allowed %v", c.name, tt.url, err, c.want)
			}
			if err != nil && !errors.Is(err, sealpost.ErrDestinationRefused) {
				t.Errorf("CheckURLHost(%s) = %v, not ErrDestinationRefused", tt.url, err)
			}
		}
	}
}

func TestDestinationsControl(t *testing.T) {
	t.Parallel()
	d := sealpost.Destinations{}
	for addr, want := range map[string]bool{
		"8.8.8.8:443": true, "[2606:4700::1]:443": true,
		"127.0.0.1:80": false, "[::1]:80": false, "[::ffff:127.0.0.1]:80": false, "169.254.169.254:80": false,
		"not-an-address": false,
	} {
		err := d.Control("tcp", addr, nil)
		if (err == nil) != want {
			t.Errorf("Control(%s) = %v, want allowed %v", addr, err, want)
		}
		if err != nil && (!errors.Is(err, sealpost.ErrDestinationRefused) || strings.Contains(err.Error(), "127.0.0.1") || strings.Contains(err.Error(), "169.254")) {
			t.Errorf("Control(%s) = %q: want ErrDestinationRefused naming no address", addr, err)
		}
	}
}
