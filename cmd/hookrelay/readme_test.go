package main

import (
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// example is a curl command from the README and the answer printed under it.
type example struct{ command, want string }

var fenced = regexp.MustCompile("(?s)```(sh|json)\n(.*?)```")

func readmeExamples(t *testing.T) []example {
	t.Helper()
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var out []example
	blocks := fenced.FindAllStringSubmatch(string(b), -1)
	for i := 0; i+1 < len(blocks); i++ {
		if blocks[i][1] == "sh" && strings.HasPrefix(blocks[i][2], "curl ") && blocks[i+1][1] == "json" {
			out = append(out, example{strings.TrimSpace(blocks[i][2]), strings.TrimSpace(blocks[i+1][2])})
		}
	}
	if len(out) < 3 {
		t.Fatalf("README has %d curl examples with answers, want at least 3", len(out))
	}
	return out
}

// TestREADME runs the README's curl commands, as printed, against `serve` with the
// built-in demo config, and compares each answer with the one the README shows.
func TestREADME(t *testing.T) {
	if _, err := exec.LookPath("curl"); err != nil {
		t.Skip("curl not installed")
	}
	examples := readmeExamples(t)
	addr := startServe(t, nil)
	for _, ex := range examples {
		cmd := strings.ReplaceAll(ex.command, "http://127.0.0.1:8080", "http://"+addr.Ingest)
		cmd = strings.ReplaceAll(cmd, "http://127.0.0.1:8081", "http://"+addr.Admin)
		c := exec.Command("sh", "-c", cmd)
		c.Dir = "../.."
		out, err := c.CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", ex.command, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != ex.want {
			t.Errorf("%s\n got: %s\nwant: %s", ex.command, got, ex.want)
		}
	}
}
