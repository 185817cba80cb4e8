package natsx

import "testing"

func TestOlderThan(t *testing.T) {
	for _, tc := range []struct {
		v    string
		want bool
	}{
		{"2.9.10", true},
		{"2.9.25", true},
		{"1.4.1", true},
		{"2.10.0", false},
		{"2.10.29", false},
		{"2.15.2", false},
		{"3.0.0", false},
		{"2.10.0-RC.1", false}, // the pre-release is read as 2.10.0
		{"2.9.0-beta", true},
		{"v2.9.10", true},
		{"", false},     // unknown: no warning
		{"2.10", false}, // unreadable
		{"x.y.z", false},
	} {
		if got := OlderThan(tc.v, MinServerVersion); got != tc.want {
			t.Errorf("OlderThan(%q, %q) = %v, want %v", tc.v, MinServerVersion, got, tc.want)
		}
	}
}
