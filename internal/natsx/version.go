package natsx

import (
	"strconv"
	"strings"
)

// MinServerVersion is the oldest nats-server hookrelay is tested with and recommends.
// Under load nats-server 2.9 (seen with 2.9.10) now and then leaves a pull request
// unanswered: its consumer then gets nothing until the pull is made again, after two
// missed heartbeats (30 s with the default expiry). 2.10 and later did not do it in
// the same runs.
const MinServerVersion = "2.10.0"

// OlderThan reports whether the server version v (as the server announces it:
// "2.9.10", "2.11.0-RC.1") is older than min ("major.minor.patch"). An unreadable
// version is not older: nothing to warn about that can be said for sure.
func OlderThan(v, min string) bool {
	a, okA := semver(v)
	b, okB := semver(min)
	if !okA || !okB {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

// semver reads major.minor.patch, ignoring a pre-release or build suffix.
func semver(v string) ([3]int, bool) {
	var out [3]int
	v = strings.TrimPrefix(v, "v")
	if i := strings.IndexAny(v, "-+"); i >= 0 {
		v = v[:i]
	}
	parts := strings.Split(v, ".")
	if len(parts) != 3 {
		return out, false
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 0 {
			return out, false
		}
		out[i] = n
	}
	return out, true
}
