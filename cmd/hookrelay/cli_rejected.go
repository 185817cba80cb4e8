package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/admin"
	"github.com/hookrelay/hookrelay/ingest"
)

const rejectedUsage = `usage: hookrelay rejected <action> [flags]

actions:
  list [--source S] [--limit 50] [--cursor C]
                     provider requests the parser refused (kept as sent), oldest first
  show SEQ           one rejected request: why, its headers and its body
  reprocess SEQ      run it through today's parser; stored when it is accepted now
                     (exit 1 when it is still rejected)
  reprocess --all --source S
                     the same for every kept request of source S (exit 1 when any
                     is still rejected)

` + actionFlagsHelp

func runRejected(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAction(ctx, "rejected", rejectedUsage, map[string]actionFunc{
		"list": rejectedList, "ls": rejectedList,
		"show": rejectedShow, "get": rejectedShow,
		"reprocess": rejectedReprocess,
	}, args, stdout, stderr)
}

func rejectedPath(seq uint64) string { return "/v1/rejected/" + strconv.FormatUint(seq, 10) }

func rejectedList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("rejected list", "hookrelay rejected list [--source S] [--limit 50] [--cursor C] [flags]", stderr)
	source := cmd.fs.String("source", "", "only this source's requests, e.g. acme-maya")
	limit := cmd.fs.Int("limit", 50, "print at most this many requests")
	cursor := cmd.fs.String("cursor", "", "continue a list from where an earlier one stopped")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if *limit < 1 {
		return usageError{"rejected list: --limit must be at least 1"}
	}
	src := strings.TrimSpace(*source)
	c, err := cmd.client()
	if err != nil {
		return err
	}
	raws, next, err := listPages(ctx, c, "/v1/rejected", map[string]string{"source": src}, *cursor, *limit)
	if err != nil {
		return err
	}
	cmdline := []string{"hookrelay", "rejected", "list"}
	if src != "" {
		cmdline = append(cmdline, "--source", src)
	}
	return listView[ingest.Rejection]{
		empty:  "no rejected requests",
		item:   "rejected request",
		header: "SEQ\tRECEIVED AT\tPROVIDER\tSOURCE\tCODE\tMESSAGE",
		row: func(w io.Writer, r ingest.Rejection) error {
			code, msg := "-", "-"
			if r.Error != nil {
				code, msg = orDash(string(r.Error.Code)), orDash(snippet(rejectionMessage(r), 80))
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\n", r.Seq, fmtTime(r.ReceivedAt.Time), orDash(r.Provider), orDash(r.Source), code, msg)
			return nil
		},
		more:    "be kept",
		cmdline: cmdline,
	}.print(stdout, cmd.json, raws, next)
}

// rejectionMessage is the parser's message with the fields it names, for a table.
func rejectionMessage(r ingest.Rejection) string {
	msg := r.Error.Message
	var fields []string
	for _, f := range r.Error.FieldErrors {
		fields = append(fields, f.Field+": "+f.Error)
	}
	if len(fields) > 0 {
		msg += " (" + strings.Join(fields, "; ") + ")"
	}
	return msg
}

func rejectedShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("rejected show", "hookrelay rejected show SEQ [flags]", stderr)
	pos, err := cmd.parse(args, 1, 1)
	if err != nil {
		return err
	}
	seq, err := seqArg("rejected show", pos[0], "rejected request", "hookrelay rejected list")
	if err != nil {
		return err
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	return showAnswer(ctx, c, cmd.json, http.MethodGet, rejectedPath(seq), nil, stdout, printRejection)
}

func printRejection(w io.Writer, r ingest.Rejection) error {
	k := newKV(w)
	k.add("seq", "%d", r.Seq)
	k.add("received at", "%s", fmtTime(r.ReceivedAt.Time))
	k.add("provider", "%s", orDash(r.Provider))
	k.add("source", "%s (merchant %s)", orDash(r.Source), orDash(r.Merchant))
	target := r.Method + " " + r.Path
	if r.Query != "" {
		target += "?" + r.Query
	}
	k.add("request", "%s", target)
	k.add("from", "%s", orDash(r.RemoteAddr))
	if r.Error != nil {
		k.add("rejected", "%s: %s", r.Error.Code, r.Error.Message)
		for _, f := range r.Error.FieldErrors {
			k.add("  "+f.Field, "%s", f.Error)
		}
		if len(r.Error.FieldErrors) == 0 {
			for _, d := range r.Error.Details {
				k.add("  detail", "%s", d)
			}
		}
	}
	k.add("reprocess", "hookrelay rejected reprocess %d (once the parser accepts it)", r.Seq)
	if err := k.flush(); err != nil {
		return err
	}
	if len(r.Header) > 0 {
		fmt.Fprintln(w, "\nheaders (credentials removed):")
		for _, name := range slices.Sorted(maps.Keys(r.Header)) {
			for _, v := range r.Header[name] {
				fmt.Fprintf(w, "  %s: %s\n", name, v)
			}
		}
	}
	fmt.Fprintf(w, "\nbody (%s, as sent):\n", plural(len(r.Body), "byte", "bytes"))
	if r.Body == "" {
		return nil
	}
	if _, err := io.WriteString(w, r.Body); err != nil {
		return err
	}
	if !strings.HasSuffix(r.Body, "\n") {
		_, err := io.WriteString(w, "\n")
		return err
	}
	return nil
}

func rejectedReprocess(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("rejected reprocess", "hookrelay rejected reprocess SEQ | hookrelay rejected reprocess --all --source S [flags]", stderr)
	all := cmd.fs.Bool("all", false, "reprocess every kept request of --source")
	source := cmd.fs.String("source", "", "with --all: the source whose requests are reprocessed (required)")
	pos, err := cmd.parse(args, 0, 1)
	if err != nil {
		return err
	}
	if !*all {
		if len(pos) == 0 {
			cmd.fs.Usage()
			return usageError{"rejected reprocess: give a SEQ, or --all --source S"}
		}
		if cmd.isSet("source") {
			return usageError{"rejected reprocess: --source goes with --all"}
		}
		seq, err := seqArg("rejected reprocess", pos[0], "rejected request", "hookrelay rejected list")
		if err != nil {
			return err
		}
		return reprocessOne(ctx, cmd, seq, stdout)
	}
	if len(pos) > 0 {
		return usageError{"rejected reprocess: give a SEQ or --all, not both"}
	}
	src := strings.TrimSpace(*source)
	if src == "" {
		cmd.fs.Usage()
		return usageError{"rejected reprocess --all: --source required (one source at a time)"}
	}
	return reprocessAll(ctx, cmd, src, stdout)
}

func reprocessOne(ctx context.Context, cmd *cliCommand, seq uint64, stdout io.Writer) error {
	c, err := cmd.client()
	if err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.do(ctx, http.MethodPost, rejectedPath(seq)+"/reprocess", nil, &raw); err != nil {
		return err
	}
	var res ingest.ReprocessResult
	if err := json.Unmarshal(raw, &res); err != nil {
		return err
	}
	if cmd.json {
		if err := printRaw(stdout, raw); err != nil {
			return err
		}
	} else {
		switch res.Outcome {
		case ingest.Reprocessed:
			fmt.Fprintf(stdout, "rejected request %d reprocessed: stored as event %s; its deliveries are scheduled\n", res.Seq, res.EventID)
		case ingest.WasDuplicate:
			fmt.Fprintf(stdout, "rejected request %d reprocessed: duplicate, event %s was stored before (nothing new is delivered)\n", res.Seq, res.EventID)
		case ingest.StillRejected:
			fmt.Fprintf(stdout, "rejected request %d is still rejected by today's parser\n", res.Seq)
		default:
			fmt.Fprintf(stdout, "rejected request %d: outcome %s\n", res.Seq, res.Outcome)
		}
	}
	if res.Outcome == ingest.StillRejected {
		return fmt.Errorf("rejected request %d is still rejected: %s", res.Seq, parserError(res))
	}
	return nil
}

// parserError is why a reprocessed request is still rejected, a field a line.
func parserError(res ingest.ReprocessResult) string {
	if res.Error == nil {
		return "(the server gave no reason)"
	}
	var b strings.Builder
	b.WriteString(string(res.Error.Code) + ": " + res.Error.Message)
	for _, f := range res.Error.FieldErrors {
		fmt.Fprintf(&b, "\n  %s: %s", f.Field, f.Error)
	}
	if len(res.Error.FieldErrors) == 0 {
		for _, d := range res.Error.Details {
			b.WriteString("\n  " + d)
		}
	}
	return b.String()
}

// maxListedStill bounds the still-rejected requests a summary names one a line.
const maxListedStill = 20

func reprocessAll(ctx context.Context, cmd *cliCommand, source string, stdout io.Writer) error {
	c, err := cmd.client()
	if err != nil {
		return err
	}
	// The server reprocesses up to its limit per request; go on after the last until done.
	sum := admin.ReprocessSummary{Source: source, Results: []ingest.ReprocessResult{}}
	var after uint64
	for {
		var part admin.ReprocessSummary
		if err := c.do(ctx, http.MethodPost, "/v1/rejected/reprocess", map[string]any{"source": source, "after_seq": after}, &part); err != nil {
			return err
		}
		sum.Stored += part.Stored
		sum.Duplicate += part.Duplicate
		sum.StillRejected += part.StillRejected
		sum.Results = append(sum.Results, part.Results...)
		if !part.Truncated || len(part.Results) == 0 {
			break
		}
		after = part.Results[len(part.Results)-1].Seq
	}
	raw, err := json.Marshal(sum)
	if err != nil {
		return err
	}
	if cmd.json {
		if err := printRaw(stdout, raw); err != nil {
			return err
		}
	} else if len(sum.Results) == 0 {
		fmt.Fprintf(stdout, "no rejected requests of source %s: nothing to reprocess\n", source)
	} else {
		fmt.Fprintf(stdout, "source %s: %s reprocessed: %s stored, %s duplicate, %s still rejected\n", source,
			plural(len(sum.Results), "request", "requests"), commas(sum.Stored), commas(sum.Duplicate), commas(sum.StillRejected))
		listed := 0
		for _, res := range sum.Results {
			if res.Outcome != ingest.StillRejected {
				continue
			}
			if listed == maxListedStill {
				fmt.Fprintf(stdout, "  … and %s more still rejected: hookrelay rejected list --source %s\n", commas(sum.StillRejected-listed), source)
				break
			}
			listed++
			fmt.Fprintf(stdout, "  %d still rejected: %s\n", res.Seq, strings.ReplaceAll(parserError(res), "\n", "\n  "))
		}
	}
	if sum.StillRejected > 0 {
		return fmt.Errorf("source %s: %s of %s still rejected", source, commas(sum.StillRejected), plural(len(sum.Results), "request", "requests"))
	}
	return nil
}
