package ingest

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"net/netip"
	"strings"

	"github.com/hookrelay/hookrelay/parse"
)

// source is a Source ready for requests: the tokens kept only as their hashes, so
// every comparison is of equal-length values in constant time.
type source struct {
	parse.Source
	tokenHashes [][sha256.Size]byte // the token, then the previous one if any
	allow       []netip.Prefix
}

func newSource(s Source) *source {
	src := &source{
		Source:      parse.Source{ID: s.ID, Provider: s.Provider, Merchant: s.Merchant},
		tokenHashes: [][sha256.Size]byte{sha256.Sum256([]byte(s.Token))},
		allow:       s.AllowCIDRs,
	}
	if s.PreviousToken != "" {
		src.tokenHashes = append(src.tokenHashes, sha256.Sum256([]byte(s.PreviousToken)))
	}
	return src
}

// inAny reports whether a is in one of ps (false for the zero Addr).
func inAny(ps []netip.Prefix, a netip.Addr) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// clientAddr is the address a request comes from: the TCP peer, or, when the peer is
// one of the trusted proxies, the nearest address in X-Forwarded-For that is not a
// trusted proxy (read from the right, since a client can write anything on the left;
// all trusted: the leftmost). Invalid when it cannot be read, which no allow-list
// admits.
func clientAddr(r *http.Request, trusted []netip.Prefix) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	addr := ap.Addr().Unmap()
	if !inAny(trusted, addr) {
		return addr
	}
	var hops []string
	for _, h := range r.Header.Values("X-Forwarded-For") {
		hops = append(hops, strings.Split(h, ",")...)
	}
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			return netip.Addr{} // a hop we cannot read: trust nothing to its left
		}
		addr = a.Unmap()
		if !inAny(trusted, addr) {
			return addr
		}
	}
	return addr
}

// authenticated reports whether the request carries the source token in one of the
// three accepted forms: HTTP Basic password, Authorization: Bearer, or ?token=.
func (s *source) authenticated(r *http.Request) bool {
	ok := false
	if _, pass, has := r.BasicAuth(); has {
		ok = s.tokenMatches(pass) || ok
	}
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		ok = s.tokenMatches(strings.TrimSpace(h[7:])) || ok
	}
	if strings.Contains(r.URL.RawQuery, "token=") {
		if t := r.URL.Query().Get("token"); t != "" {
			ok = s.tokenMatches(t) || ok
		}
	}
	return ok
}

// tokenMatches compares candidate with every token of the source (no early exit).
func (s *source) tokenMatches(candidate string) bool {
	h := sha256.Sum256([]byte(candidate))
	ok := 0
	for _, th := range s.tokenHashes {
		ok |= subtle.ConstantTimeCompare(h[:], th[:])
	}
	return ok == 1
}
