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

// allows reports whether the client address may post to this source.
func (s *source) allows(r *http.Request) bool {
	if len(s.allow) == 0 {
		return true
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip := ap.Addr().Unmap()
	for _, p := range s.allow {
		if p.Contains(ip) {
			return true
		}
	}
	return false
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
