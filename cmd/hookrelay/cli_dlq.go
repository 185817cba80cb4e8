package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/deliver"
)

const dlqUsage = `usage: hookrelay dlq <action> [flags]

actions:
  list [--endpoint ID] [--type T] [--since T] [--until T] [--state open|replayed]
       [--limit 50] [--cursor C]
                     dead letters, oldest first
  show SEQ           one dead letter with its attempts
  replay SEQ         deliver one dead letter again (attempt 1, due now)
  replay --all [--endpoint ID] [--type T] [--since T] [--until T] [--dry-run] [--yes]
                     count the open letters the filter selects, then (unless
                     --dry-run, and after asking unless --yes) replay them all and
                     follow the job until it ends

--since and --until take an RFC 3339 time (2026-11-21T10:00:00Z), a date
(2026-11-21, midnight UTC) or a duration meaning that long ago (2h).
` + actionFlagsHelp

// replayPollEvery is how often replay --all asks how its job is doing.
var replayPollEvery = 250 * time.Millisecond

func runDLQ(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAction(ctx, "dlq", dlqUsage, map[string]actionFunc{
		"list": dlqList, "ls": dlqList,
		"show": dlqShow, "get": dlqShow,
		"replay": dlqReplay,
	}, args, stdout, stderr)
}

// letterFilterFlags are the filters list and replay --all share.
type letterFilterFlags struct {
	endpoint, typ, since, until *string
}

func addLetterFilters(cmd *cliCommand) letterFilterFlags {
	return letterFilterFlags{
		endpoint: cmd.fs.String("endpoint", "", "only this endpoint's letters"),
		typ:      cmd.fs.String("type", "", "only this event type, e.g. payment.failed"),
		since:    cmd.fs.String("since", "", "only letters dead at or after this time (RFC 3339, date or duration ago)"),
		until:    cmd.fs.String("until", "", "only letters dead before this time (RFC 3339, date or duration ago)"),
	}
}

// resolve returns the filters in the API's form (times as RFC 3339 UTC), by name.
func (f letterFilterFlags) resolve(now time.Time) (map[string]string, error) {
	since, err := timeFlag("since", *f.since, now)
	if err != nil {
		return nil, err
	}
	until, err := timeFlag("until", *f.until, now)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range map[string]string{"endpoint": strings.TrimSpace(*f.endpoint), "type": strings.TrimSpace(*f.typ), "since": since, "until": until} {
		if v != "" {
			out[k] = v
		}
	}
	return out, nil
}

// letterFilterOrder is the order the letter filters are given back in words and hints
// (state: list only).
var letterFilterOrder = []string{"endpoint", "type", "since", "until", "state"}

// describeFilter is the filter in words, for questions and summaries.
func describeFilter(f map[string]string) string {
	var parts []string
	for _, k := range letterFilterOrder {
		if v, ok := f[k]; ok {
			parts = append(parts, k+" "+v)
		}
	}
	if len(parts) == 0 {
		return "all endpoints and types"
	}
	return strings.Join(parts, ", ")
}

func letterPath(seq uint64) string { return "/v1/deadletters/" + strconv.FormatUint(seq, 10) }

func dlqList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("dlq list", "hookrelay dlq list [--endpoint ID] [--type T] [--since T] [--until T] [--state open|replayed] [--limit 50] [flags]", stderr)
	filters := addLetterFilters(cmd)
	state := cmd.fs.String("state", "", "open (not replayed yet) or replayed")
	limit := cmd.fs.Int("limit", 50, "print at most this many letters")
	cursor := cmd.fs.String("cursor", "", "continue a list from where an earlier one stopped")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if *limit < 1 {
		return usageError{"dlq list: --limit must be at least 1"}
	}
	if *state != "" && *state != deliver.LetterOpen && *state != deliver.LetterReplayed {
		return usageError{"dlq list: --state must be open or replayed"}
	}
	f, err := filters.resolve(time.Now())
	if err != nil {
		return err
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	f["state"] = *state
	raws, next, err := listPages(ctx, c, "/v1/deadletters", f, *cursor, *limit)
	if err != nil {
		return err
	}
	return listView[deliver.StoredLetter]{
		empty:  "no dead letters match",
		item:   "dead letter",
		header: "SEQ\tSTATE\tDEAD AT\tENDPOINT\tEVENT\tTYPE\tATTEMPTS\tREASON",
		row: func(w io.Writer, l deliver.StoredLetter) error {
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%d\t%s\n", l.Seq, l.State, fmtTime(l.DeadAt), l.Endpoint.ID, l.EventID,
				orDash(letterType(l)), len(l.Attempts), clip(l.Reason, 60))
			return nil
		},
		more:    "match",
		cmdline: append([]string{"hookrelay", "dlq", "list"}, filterFlags(f, letterFilterOrder)...),
	}.print(stdout, cmd.json, raws, next)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// letterType is the type of a letter's event ("" when the event is not there).
func letterType(l deliver.StoredLetter) string {
	var h struct {
		Type string `json:"type"`
	}
	if len(l.Event) == 0 || json.Unmarshal(l.Event, &h) != nil {
		return ""
	}
	return h.Type
}

func dlqShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("dlq show", "hookrelay dlq show SEQ [flags]", stderr)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	seq, err := seqArg("dlq show", pos[0], "dead letter", "hookrelay dlq list")
	if err != nil {
		return err
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	return showAnswer(ctx, c, cmd.json, http.MethodGet, letterPath(seq), nil, stdout, printLetter)
}

func printLetter(w io.Writer, l deliver.StoredLetter) error {
	k := newKV(w)
	k.add("seq", "%d", l.Seq)
	if l.State == deliver.LetterOpen {
		k.add("state", "open (replay it with: hookrelay dlq replay %d)", l.Seq)
	} else {
		k.add("state", "%s", l.State)
	}
	k.add("delivery", "%s", l.ID)
	event := l.EventID
	if t := letterType(l); t != "" {
		event += " (" + t + ")"
	}
	if len(l.Event) == 0 {
		event += " (the event had expired when it died)"
	}
	k.add("event", "%s", event)
	if l.EventSeq != 0 {
		k.add("event seq", "%d", l.EventSeq)
	}
	ep := l.Endpoint.ID
	if l.Endpoint.Merchant != "" {
		ep += " (merchant " + l.Endpoint.Merchant + ")"
	}
	k.add("endpoint", "%s", ep)
	if l.Endpoint.URL != "" {
		k.add("url", "%s", l.Endpoint.URL)
	}
	k.add("reason", "%s", l.Reason)
	k.add("dead at", "%s", fmtTime(l.DeadAt))
	k.add("first attempt", "%s", fmtTime(l.First))
	k.add("final attempt", "%d", l.FinalAttempt)
	if err := k.flush(); err != nil {
		return err
	}
	if len(l.Attempts) == 0 {
		fmt.Fprintln(w, "\nno attempts recorded")
		return nil
	}
	fmt.Fprintf(w, "\nattempts (%d):\n", len(l.Attempts))
	tw := newTable(w)
	fmt.Fprintln(tw, "  #\tSTART\tDURATION\tSTATUS\tOUTCOME\tERROR")
	for _, a := range l.Attempts {
		problem := a.Error
		if a.Body != "" {
			if problem != "" {
				problem += "; "
			}
			problem += "response: " + a.Body
		}
		fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, fmtTime(a.Start),
			fmtMillis(a.DurationMS), statusText(a.Status), orDash(a.Outcome), orDash(clip(problem, 80)))
	}
	return tw.Flush()
}

// fmtMillis shows an attempt's duration: "85ms", "2.5s", "1m30s".
func fmtMillis(ms int64) string {
	if ms < 1000 {
		return strconv.FormatInt(ms, 10) + "ms"
	}
	return (time.Duration(ms) * time.Millisecond).String()
}

func dlqReplay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("dlq replay", "hookrelay dlq replay SEQ | hookrelay dlq replay --all [--endpoint ID] [--type T] [--since T] [--until T] [--dry-run] [--yes] [flags]", stderr)
	all := cmd.fs.Bool("all", false, "replay every open letter the filters select (a bulk replay job)")
	filters := addLetterFilters(cmd)
	dryRun := cmd.fs.Bool("dry-run", false, "with --all: only count the letters that would be replayed")
	yes := cmd.fs.Bool("yes", false, "with --all: do not ask before replaying")
	pos, err := cmd.parse(args, 0, 1)
	if err != nil {
		return err
	}
	bulkOnly := []string{"endpoint", "type", "since", "until", "dry-run", "yes"}
	if !*all {
		if len(pos) == 0 {
			cmd.fs.Usage()
			return usageError{"dlq replay: give a SEQ, or --all with filters"}
		}
		for _, name := range bulkOnly {
			if cmd.isSet(name) {
				return usageError{"dlq replay: --" + name + " goes with --all"}
			}
		}
		seq, err := seqArg("dlq replay", pos[0], "dead letter", "hookrelay dlq list")
		if err != nil {
			return err
		}
		return replayOne(ctx, cmd, seq, stdout)
	}
	if len(pos) > 0 {
		return usageError{"dlq replay: give a SEQ or --all, not both"}
	}
	f, err := filters.resolve(time.Now())
	if err != nil {
		return err
	}
	return replayAll(ctx, cmd, f, *dryRun, *yes, stdout, stderr)
}

func replayOne(ctx context.Context, cmd *cliCommand, seq uint64, stdout io.Writer) error {
	c, err := cmd.client()
	if err != nil {
		return err
	}
	return showAnswer(ctx, c, cmd.json, http.MethodPost, letterPath(seq)+"/replay", nil, stdout, func(w io.Writer, l deliver.StoredLetter) error {
		fmt.Fprintf(w, "dead letter %d replayed: delivery %s of event %s goes to %s again (attempt 1, due now)\n", l.Seq, l.ID, l.EventID, l.Endpoint.ID)
		return nil
	})
}

// bulkBody is the body of POST /v1/deadletters/replay.
func bulkBody(f map[string]string, dryRun bool) map[string]any {
	b := map[string]any{"dry_run": dryRun}
	for k, v := range f {
		b[k] = v
	}
	return b
}

func replayAll(ctx context.Context, cmd *cliCommand, f map[string]string, dryRun, yes bool, stdout, stderr io.Writer) error {
	c, err := cmd.client()
	if err != nil {
		return err
	}
	var dryRaw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/v1/deadletters/replay", bulkBody(f, true), &dryRaw); err != nil {
		return err
	}
	var dry admin.DryRun
	if err := json.Unmarshal(dryRaw, &dry); err != nil {
		return err
	}
	if dryRun || dry.Matched == 0 {
		if cmd.json {
			return printRaw(stdout, dryRaw)
		}
		switch {
		case dry.Matched == 0:
			fmt.Fprintf(stdout, "no open dead letters match (%s); nothing to replay\n", describeFilter(f))
		default:
			fmt.Fprintf(stdout, "%s (%s); dry run, nothing replayed\n", lettersMatch(dry.Matched), describeFilter(f))
		}
		return nil
	}
	if !cmd.json {
		fmt.Fprintf(stdout, "%s (%s)\n", lettersMatch(dry.Matched), describeFilter(f))
	}
	if !yes {
		if err := confirm(stderr, fmt.Sprintf("Replay %s (%s)?", plural(dry.Matched, "dead letter", "dead letters"), describeFilter(f))); err != nil {
			return err
		}
	}

	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, "/v1/deadletters/replay", bulkBody(f, false), &raw); err != nil {
		return err
	}
	var job admin.ReplayJob
	if err := json.Unmarshal(raw, &job); err != nil {
		return err
	}
	bar := progressBar{w: stderr, on: stderrIsTerminal(), total: dry.Matched}
	bar.draw(job)
	tick := time.NewTicker(replayPollEvery)
	defer tick.Stop()
	failures := 0
	stopped := func() error {
		bar.end()
		return fmt.Errorf("stopped watching: replay job %s keeps running on the server (GET /v1/replays/%s)", job.ID, job.ID)
	}
	for job.State == "running" {
		select {
		case <-ctx.Done():
			return stopped()
		case <-tick.C:
		}
		var next json.RawMessage
		err := c.do(ctx, http.MethodGet, "/v1/replays/"+url.PathEscape(job.ID), nil, &next)
		var ae *apiError
		switch {
		case err == nil:
			failures = 0
		case ctx.Err() != nil:
			return stopped()
		case errors.As(err, &ae):
			bar.end()
			return fmt.Errorf("lost track of replay job %s: %w", job.ID, err)
		default:
			// The connection may come back; a job runs on whether anyone watches.
			if failures++; failures == 5 {
				bar.end()
				return fmt.Errorf("lost track of replay job %s (it may still be running): %w", job.ID, err)
			}
			continue
		}
		if err := json.Unmarshal(next, &job); err != nil {
			bar.end()
			return err
		}
		raw = next
		bar.draw(job)
	}
	bar.end()

	if cmd.json {
		if err := printRaw(stdout, raw); err != nil {
			return err
		}
	} else {
		took := ""
		if job.FinishedAt != nil {
			took = " in " + job.FinishedAt.Sub(job.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(stdout, "replay %s %s%s: %s matched, %s replayed, %s already replayed, %s failed\n", job.ID, job.State, took,
			commas(job.Matched), commas(job.Replayed), commas(job.AlreadyReplayed), commas(job.Failed))
		for _, e := range job.Errors {
			fmt.Fprintln(stdout, "  "+e)
		}
		if job.Truncated {
			fmt.Fprintln(stdout, "  stopped at the server's bulk limit; run the same replay again for the rest")
		}
	}
	switch {
	case job.State != "done":
		return fmt.Errorf("replay job %s ended %s", job.ID, job.State)
	case job.Failed > 0:
		return fmt.Errorf("replay job %s: %s of %s letters could not be replayed", job.ID, commas(job.Failed), commas(job.Matched))
	}
	return nil
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return commas(n) + " " + many
}

func lettersMatch(n int) string {
	if n == 1 {
		return "1 open dead letter matches"
	}
	return commas(n) + " open dead letters match"
}

// progressBar draws a bulk replay's progress on one terminal line, when on.
type progressBar struct {
	w     io.Writer
	on    bool
	total int // letters the dry run counted
	width int // of the last line drawn, to blank what a shorter one leaves
	drawn bool
}

const barCells = 20

func (p *progressBar) draw(j admin.ReplayJob) {
	if !p.on {
		return
	}
	total := max(p.total, j.Matched)
	filled := barCells
	if total > 0 {
		filled = min(barCells, j.Matched*barCells/total)
	}
	line := fmt.Sprintf("[%s%s] %s/%s replayed %s already %s failed %s",
		strings.Repeat("#", filled), strings.Repeat("-", barCells-filled),
		commas(j.Matched), commas(total), commas(j.Replayed), commas(j.AlreadyReplayed), commas(j.Failed))
	pad := ""
	if n := len(line); n < p.width {
		pad = strings.Repeat(" ", p.width-n)
	}
	p.width = len(line)
	fmt.Fprint(p.w, "\r"+line+pad)
	p.drawn = true
}

// end finishes the bar's line.
func (p *progressBar) end() {
	if p.on && p.drawn {
		fmt.Fprintln(p.w)
		p.drawn = false
	}
}
