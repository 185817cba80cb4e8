package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// The on-call commands' environment.
const (
	envAdminURL     = "HOOKRELAY_ADMIN_URL"
	envAdminToken   = "HOOKRELAY_ADMIN_TOKEN"
	defaultAdminURL = "http://127.0.0.1:8081"
)

// stderrIsTerminal reports whether stderr is a terminal (progress bars are drawn only
// then). Tests replace it.
var stderrIsTerminal = func() bool { return isCharDevice(os.Stderr) }

// confirmInput is where a yes/no answer is read from, and whether someone is there
// to type it (stdin is a terminal). Tests replace it.
var confirmInput = func() (io.Reader, bool) { return os.Stdin, isCharDevice(os.Stdin) }

func isCharDevice(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// cliCommand is one on-call command's flag set with the flags every one has.
type cliCommand struct {
	fs       *flag.FlagSet
	stderr   io.Writer
	synopsis string // "hookrelay dlq show SEQ [flags]"
	adminURL string
	json     bool
	timeout  time.Duration
}

func newCLICommand(name, synopsis string, stderr io.Writer) *cliCommand {
	c := &cliCommand{fs: flag.NewFlagSet(name, flag.ContinueOnError), stderr: stderr, synopsis: synopsis}
	def := os.Getenv(envAdminURL)
	if def == "" {
		def = defaultAdminURL
	}
	c.fs.StringVar(&c.adminURL, "admin-url", def, "admin API base URL (env "+envAdminURL+"); the token is read from "+envAdminToken)
	c.fs.BoolVar(&c.json, "json", false, "print the admin API's JSON instead of a table (for scripts)")
	c.fs.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long each request to the admin API may take")
	// flag's own error line would repeat the one main prints; usage goes to stderr.
	c.fs.SetOutput(io.Discard)
	c.fs.Usage = func() {
		fmt.Fprintf(stderr, "usage: %s\n\nflags:\n", c.synopsis)
		c.fs.SetOutput(stderr)
		c.fs.PrintDefaults()
		c.fs.SetOutput(io.Discard)
	}
	return c
}

// parse reads flags anywhere among args ("dlq show 12 --json" as well as
// "dlq show --json 12") and returns the other arguments; everything after "--" is one.
// It checks that there are from min to max of them (max < 0: any number).
func (c *cliCommand) parse(args []string, min, max int) ([]string, error) {
	var pos []string
	for {
		if err := c.fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, usageError{c.fs.Name() + ": " + err.Error()}
		}
		rest := c.fs.Args()
		if len(rest) == 0 {
			break
		}
		if used := args[:len(args)-len(rest)]; len(used) > 0 && used[len(used)-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if len(pos) < min || (max >= 0 && len(pos) > max) {
		c.fs.Usage()
		switch {
		case len(pos) < min:
			return nil, usageError{c.fs.Name() + ": missing argument; usage: " + c.synopsis}
		default:
			return nil, usageError{fmt.Sprintf("%s: unexpected argument %q; usage: %s", c.fs.Name(), pos[max], c.synopsis)}
		}
	}
	if c.timeout <= 0 {
		return nil, usageError{c.fs.Name() + ": --timeout must be positive"}
	}
	return pos, nil
}

// isSet reports whether flag name was given.
func (c *cliCommand) isSet(name string) bool {
	set := false
	c.fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// client returns the admin API client the flags and the environment describe.
func (c *cliCommand) client() (*client, error) {
	token := strings.TrimSpace(os.Getenv(envAdminToken))
	if token == "" {
		return nil, usageError{"no admin token: set " + envAdminToken + " to the server's admin.token"}
	}
	base := strings.TrimRight(strings.TrimSpace(c.adminURL), "/")
	if base == "" {
		return nil, usageError{"--admin-url is empty"}
	}
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	return &client{base: base, token: token, timeout: c.timeout, hc: &http.Client{}}, nil
}

// printRaw writes an answer kept as sent, ending it with a newline.
func printRaw(w io.Writer, raw json.RawMessage) error {
	if _, err := w.Write(raw); err != nil {
		return err
	}
	if len(raw) == 0 || raw[len(raw)-1] != '\n' {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}

// printJSON writes v indented as the admin API does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 2, ' ', 0) }

// kv prints aligned "key: value" lines.
type kv struct{ tw *tabwriter.Writer }

func newKV(w io.Writer) *kv { return &kv{tabwriter.NewWriter(w, 0, 8, 1, ' ', 0)} }

func (k *kv) add(key string, format string, args ...any) {
	fmt.Fprintf(k.tw, "%s:\t%s\n", key, fmt.Sprintf(format, args...))
}

func (k *kv) flush() error { return k.tw.Flush() }

// fmtTime shows a time in UTC to the second ("-" when zero).
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

// commas writes n with thousands separators: 10000 → "10,000".
func commas(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// clip shortens s to n runes for a table cell, on one line.
func clip(s string, n int) string {
	s = strings.Join(strings.Fields(s), " ")
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// splitList reads a comma-separated flag value, dropping blanks.
func splitList(v string) []string {
	out := []string{}
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// timeFlag reads --since/--until: an RFC 3339 time, a date (midnight UTC), or a
// duration meaning that long ago ("2h", "90m"). It returns RFC 3339 UTC ("" when v is).
func timeFlag(name, v string, now time.Time) (string, error) {
	v = strings.TrimSpace(v)
	if v == "" {
		return "", nil
	}
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC().Format(time.RFC3339Nano), nil
	}
	if t, err := time.Parse("2006-01-02", v); err == nil {
		return t.UTC().Format(time.RFC3339), nil
	}
	if d, err := time.ParseDuration(v); err == nil && d >= 0 {
		return now.Add(-d).UTC().Format(time.RFC3339), nil
	}
	return "", usageError{fmt.Sprintf("--%s %q: want an RFC 3339 time (2026-11-21T10:00:00Z), a date (2026-11-21) or a duration ago (2h)", name, v)}
}

// confirm asks question on stderr and reads y/yes from confirmInput. Without a
// terminal to ask it refuses, telling to pass --yes.
func confirm(stderr io.Writer, question string) error {
	in, interactive := confirmInput()
	if !interactive {
		return usageError{question + " Refusing without a terminal to ask: add --yes"}
	}
	fmt.Fprintf(stderr, "%s [y/N] ", question)
	// Byte by byte: nothing after the answer's line is read from stdin.
	var line []byte
	b := make([]byte, 1)
	answered := false
	for {
		n, err := in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				answered = true
				break
			}
			line = append(line, b[0])
		}
		if err != nil {
			break
		}
	}
	switch answer := strings.ToLower(strings.TrimSpace(string(line))); {
	case answer == "y" || answer == "yes":
		return nil
	case !answered && answer == "":
		fmt.Fprintln(stderr)
		return errors.New("no answer (stdin ended); nothing was done: add --yes to skip the question")
	}
	return errors.New("not confirmed; nothing was done")
}
