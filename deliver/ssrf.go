package deliver

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/netip"
	"syscall"
	"time"
)

// BlockedError is the SSRF guard refusing a dial: the resolved address is not one a
// delivery may reach.
type BlockedError struct {
	Addr netip.Addr // invalid when the dial address could not be parsed
	// Reason names the blocked range, e.g. "loopback" or "NAT64 embedding 10.0.0.0/8".
	Reason string
}

func (e *BlockedError) Error() string {
	if !e.Addr.IsValid() {
		return "deliver: ssrf guard blocked dial: " + e.Reason
	}
	return "deliver: ssrf guard blocked " + e.Addr.String() + " (" + e.Reason + ")"
}

// blockedRange is one range no delivery may reach unless allow-listed.
type blockedRange struct {
	prefix netip.Prefix
	reason string
}

// blockedRanges lists the non-public ranges. IPv4-mapped IPv6 (::ffff:0:0/96) is not
// here: it is unmapped first and judged as IPv4. NAT64 64:ff9b::/96 and 6to4 2002::/16
// are not here either: their embedded IPv4 is judged (see embeddedIPv4).
var blockedRanges = func() []blockedRange {
	table := []struct{ cidr, reason string }{
		// IPv4
		{"0.0.0.0/8", "this network (incl. unspecified)"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (incl. cloud metadata)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation (TEST-NET-1)"},
		{"192.88.99.0/24", "6to4 relay anycast (deprecated)"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation (TEST-NET-2)"},
		{"203.0.113.0/24", "documentation (TEST-NET-3)"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved (incl. broadcast 255.255.255.255)"},
		// IPv6
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::/96", "IPv4-compatible (deprecated)"},
		{"::ffff:0:0:0/96", "IPv4-translated (SIIT)"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/32", "Teredo"},
		{"2001:2::/48", "benchmarking"},
		{"2001:10::/28", "ORCHID (deprecated)"},
		{"2001:20::/28", "ORCHIDv2"},
		{"2001:db8::/32", "documentation"},
		{"3fff::/20", "documentation"},
		{"5f00::/16", "SRv6 SIDs"},
		{"fc00::/7", "unique local"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]blockedRange, len(table))
	for i, r := range table {
		out[i] = blockedRange{netip.MustParsePrefix(r.cidr), r.reason}
	}
	return out
}()

var (
	nat64Prefix    = netip.MustParsePrefix("64:ff9b::/96")
	sixToFourRange = netip.MustParsePrefix("2002::/16")
	// globalUnicast6 is the only IPv6 space IANA allocates for global unicast;
	// anything outside it (and not handled above) is blocked.
	globalUnicast6 = netip.MustParsePrefix("2000::/3")
)

// Guard decides which addresses deliveries may connect to: public unicast only,
// unless an allow-list prefix contains the address. The zero Guard blocks every
// non-public address. A Guard is read-only after NewGuard and safe for concurrent use.
type Guard struct {
	allow []netip.Prefix
}

// NewGuard returns a guard that also opens the allow-listed prefixes (the dev config
// opens 127.0.0.0/8 and ::1/128).
func NewGuard(allow []netip.Prefix) *Guard {
	g := &Guard{allow: make([]netip.Prefix, 0, len(allow))}
	for _, p := range allow {
		if p.IsValid() {
			g.allow = append(g.allow, p.Masked())
		}
	}
	return g
}

// Allowed reports whether a delivery may connect to ip.
func (g *Guard) Allowed(ip netip.Addr) bool { return g.check(ip) == nil }

// check returns nil when ip may be reached, else the *BlockedError saying why.
func (g *Guard) check(ip netip.Addr) *BlockedError {
	orig := ip
	ip = ip.WithZone("").Unmap() // ::ffff:a.b.c.d is a.b.c.d on the wire
	if !ip.IsValid() {
		return &BlockedError{Addr: orig, Reason: "invalid address"}
	}
	if g.allowListed(ip) {
		return nil
	}
	if v4, via, ok := embeddedIPv4(ip); ok {
		if err := g.check(v4); err != nil {
			return &BlockedError{Addr: orig, Reason: via + " embedding " + v4.String() + ": " + err.Reason}
		}
		return nil
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(ip) {
			return &BlockedError{Addr: orig, Reason: r.reason}
		}
	}
	if ip.Is6() && !globalUnicast6.Contains(ip) {
		return &BlockedError{Addr: orig, Reason: "not IPv6 global unicast"}
	}
	return nil
}

func (g *Guard) allowListed(ip netip.Addr) bool {
	for _, p := range g.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// embeddedIPv4 returns the IPv4 address a translation prefix carries: NAT64
// 64:ff9b::/96 (last 32 bits) and 6to4 2002::/16 (bits 16–47). Traffic to those
// reaches the IPv4 address, so that is what the guard judges.
func embeddedIPv4(ip netip.Addr) (v4 netip.Addr, via string, ok bool) {
	if !ip.Is6() {
		return netip.Addr{}, "", false
	}
	b := ip.As16()
	switch {
	case nat64Prefix.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), "NAT64", true
	case sixToFourRange.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), "6to4", true
	}
	return netip.Addr{}, "", false
}

// Control is a net.Dialer.ControlContext: it runs after name resolution, on the IP
// the socket is about to connect to, and before connect(2). Checking here, not on the
// URL's host name, means DNS rebinding (a name that resolved to a public address at
// validation time and to 10.0.0.1 now) cannot pass, and every address of a multi-
// address name is checked as it is tried. It returns a *BlockedError.
func (g *Guard) Control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &BlockedError{Reason: "unparseable dial address " + address}
	}
	if b := g.check(ap.Addr()); b != nil {
		return b
	}
	return nil
}

// TransportConfig tunes NewTransport. Zero values mean the defaults given per field.
type TransportConfig struct {
	DialTimeout         time.Duration // default 5 s
	TLSHandshakeTimeout time.Duration // default 5 s
	IdleConnTimeout     time.Duration // default 90 s
	// MaxIdleConnsPerHost is how many kept-alive connections per endpoint host stay
	// open between attempts; default 1000, the largest max_in_flight, so an endpoint
	// at its limit reuses connections instead of dialing a new one per attempt.
	MaxIdleConnsPerHost int
	MaxIdleConns        int // across all hosts; default 8192
	// TLSClientConfig defaults to system roots and TLS 1.2 or newer.
	TLSClientConfig *tls.Config

	// Test hooks (package tests only): wrap the guard's Control, and a resolver
	// that never queries the network.
	wrapControl func(controlFunc) controlFunc
	resolver    *net.Resolver
}

type controlFunc = func(ctx context.Context, network, address string, c syscall.RawConn) error

// NewTransport returns an http.Transport whose every connection goes through g's
// dial-time check. Connections are kept alive and reused per endpoint host.
func NewTransport(g *Guard, cfg TransportConfig) *http.Transport {
	if g == nil {
		g = &Guard{}
	}
	control := controlFunc(g.Control)
	if cfg.wrapControl != nil {
		control = cfg.wrapControl(control)
	}
	dialer := &net.Dialer{
		Timeout:        orDuration(cfg.DialTimeout, 5*time.Second),
		KeepAlive:      30 * time.Second,
		ControlContext: control,
		Resolver:       cfg.resolver,
	}
	tlsConf := cfg.TLSClientConfig
	if tlsConf == nil {
		tlsConf = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return &http.Transport{
		// Proxy stays nil on purpose: with a proxy (e.g. from HTTPS_PROXY) the dialer
		// connects to the proxy, and the proxy, not the guard, picks the merchant's
		// address, so the SSRF guard would be bypassed.
		Proxy:       nil,
		DialContext: dialer.DialContext,
		// TLS is done by the transport over the guarded connection (no DialTLSContext).
		TLSClientConfig:        tlsConf,
		ForceAttemptHTTP2:      true,
		TLSHandshakeTimeout:    orDuration(cfg.TLSHandshakeTimeout, 5*time.Second),
		IdleConnTimeout:        orDuration(cfg.IdleConnTimeout, 90*time.Second),
		MaxIdleConns:           orInt(cfg.MaxIdleConns, 8192),
		MaxIdleConnsPerHost:    orInt(cfg.MaxIdleConnsPerHost, 1000),
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: 64 << 10,
	}
}

func orDuration(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

func orInt(n, def int) int {
	if n <= 0 {
		return def
	}
	return n
}
