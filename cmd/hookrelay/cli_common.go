package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
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

// actionFlagsHelp ends the usage of each command with actions.
const actionFlagsHelp = `Every action takes --admin-url URL (env HOOKRELAY_ADMIN_URL, default
http://127.0.0.1:8081), --json (the API's JSON, for scripts) and --timeout 30s.
The admin token is read from HOOKRELAY_ADMIN_TOKEN.`

// actionFunc runs one action of a command with the arguments after the action's name.
type actionFunc func(ctx context.Context, args []string, stdout, stderr io.Writer) error

// runAction runs the action of command name that args[0] names. help (-h, --help)
// prints usage on stdout; no action or an unknown one prints it on stderr and is a
// usage error.
func runAction(ctx context.Context, name, usage string, actions map[string]actionFunc, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return usageError{name + ": no action given"}
	}
	switch args[0] {
	case "help", "-h", "--help":
		fmt.Fprintln(stdout, usage)
		return nil
	}
	action, ok := actions[args[0]]
	if !ok {
		fmt.Fprintln(stderr, usage)
		return usageError{fmt.Sprintf("%s: unknown action %q", name, args[0])}
	}
	return action(ctx, args[1:], stdout, stderr)
}

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

// idArg parses args as exactly one positional argument (an id) and makes the admin
// client: the usage error first, then the token's.
func (c *cliCommand) idArg(args []string) (string, *client, error) {
	pos, err := c.parse(args, 1, 1)
	if err != nil {
		return "", nil, err
	}
	cl, err := c.client()
	if err != nil {
		return "", nil, err
	}
	return pos[0], cl, nil
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

// showAnswer sends method path with body (nil: none) and prints the answer: as sent
// with --json (asJSON), else decoded into a T and shown by show.
func showAnswer[T any](ctx context.Context, c *client, asJSON bool, method, path string, body any, w io.Writer, show func(io.Writer, T) error) error {
	var raw json.RawMessage
	if err := c.do(ctx, method, path, body, &raw); err != nil {
		return err
	}
	if asJSON {
		return printRaw(w, raw)
	}
	var v T
	if err := json.Unmarshal(raw, &v); err != nil {
		return err
	}
	return show(w, v)
}

// printJSON writes v indented as the admin API does.
func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// maxPageItems is the most items the admin API gives in one page of a list.
const maxPageItems = 1000

// listPages reads the list at path (GET path?filter&limit&cursor; blank filters are
// left out) page by page from cursor ("": the start), following next_cursor until it
// has limit items (limit < 1: every page) or the list ends. It returns the items as
// sent and the cursor that goes on after them ("" when the list ended).
func listPages(ctx context.Context, c *client, path string, filter map[string]string, cursor string, limit int) ([]json.RawMessage, string, error) {
	q := url.Values{}
	for k, v := range filter {
		if v != "" {
			q.Set(k, v)
		}
	}
	var items []json.RawMessage
	next := cursor
	for {
		n := maxPageItems
		if limit > 0 {
			n = min(limit-len(items), maxPageItems)
		}
		q.Set("limit", strconv.Itoa(n))
		if next != "" {
			q.Set("cursor", next)
		}
		var page struct {
			Items      []json.RawMessage `json:"items"`
			NextCursor string            `json:"next_cursor"`
		}
		if err := c.do(ctx, http.MethodGet, path+"?"+q.Encode(), nil, &page); err != nil {
			return nil, "", err
		}
		items = append(items, page.Items...)
		next = page.NextCursor
		if next == "" || len(page.Items) == 0 || (limit > 0 && len(items) >= limit) {
			return items, next, nil
		}
	}
}

// printPage prints items read with listPages as the admin API pages a list, with
// next_cursor when more may follow.
func printPage(w io.Writer, items []json.RawMessage, next string) error {
	if items == nil {
		items = []json.RawMessage{}
	}
	return printJSON(w, struct {
		Items      []json.RawMessage `json:"items"`
		NextCursor string            `json:"next_cursor,omitempty"`
	}{items, next})
}

// listView prints a list read with listPages as a table, an item of type T a row.
type listView[T any] struct {
	empty   string                   // printed, then a newline, when there are no items
	item    string                   // an item in words, for errors: "dead letter"
	header  string                   // the table's first row, cells separated by tabs
	row     func(io.Writer, T) error // writes one item's row, ending in \n
	more    string                   // printMore's more: "match" or "be kept"
	cmdline []string                 // printMore's cmdline
}

// print prints items with --json (asJSON) as printPage does, else as a table, ended
// with printMore when next (the cursor listPages gave) is not "".
func (v listView[T]) print(w io.Writer, asJSON bool, items []json.RawMessage, next string) error {
	if asJSON {
		return printPage(w, items, next)
	}
	if len(items) == 0 {
		fmt.Fprintln(w, v.empty)
		return nil
	}
	tw := newTable(w)
	fmt.Fprintln(tw, v.header)
	for _, raw := range items {
		var item T
		if err := json.Unmarshal(raw, &item); err != nil {
			return fmt.Errorf("%s in the list: %w", v.item, err)
		}
		if err := v.row(tw, item); err != nil {
			return err
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if next != "" {
		printMore(w, len(items), v.more, v.cmdline, next)
	}
	return nil
}

// filterFlags gives filters back as the flags that set them, in order ("reference_id"
// from --reference-id); blank ones are left out.
func filterFlags(filter map[string]string, order []string) []string {
	var out []string
	for _, k := range order {
		if v := filter[k]; v != "" {
			out = append(out, "--"+strings.ReplaceAll(k, "_", "-"), v)
		}
	}
	return out
}

// printMore ends a list cut short: how many were shown, and the command line that
// goes on where it stopped (cmdline, then --cursor next). more is "match" or "be kept".
func printMore(w io.Writer, shown int, more string, cmdline []string, next string) {
	fmt.Fprintf(w, "\n%d shown; more may %s: %s --cursor %s (or a bigger --limit)\n", shown, more, strings.Join(cmdline, " "), next)
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

// statusText shows an attempt's HTTP status ("-" when there was no response).
func statusText(status int) string {
	if status == 0 {
		return "-"
	}
	return strconv.Itoa(status)
}

// seqArg reads v, the SEQ argument of command name, as the SEQ of a what ("dead
// letter") that the command list ("hookrelay dlq list") shows.
func seqArg(name, v, what, list string) (uint64, error) {
	n, err := strconv.ParseUint(v, 10, 64)
	if err != nil || n == 0 {
		return 0, usageError{fmt.Sprintf("%s: %q is not a %s's SEQ (a whole number, as '%s' shows)", name, v, what, list)}
	}
	return n, nil
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
