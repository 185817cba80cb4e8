package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode"

	"github.com/hookrelay/hookrelay/deliver"
	"github.com/hookrelay/hookrelay/parse"
)

const eventsUsage = `usage: hookrelay events <action> [flags]

actions:
  find [--reference-id R] [--type T] [--source S] [--since T] [--until T]
       [--limit 50] [--cursor C]
                     stored events, oldest first: by the merchant's reference
                     (the index answers), else by walking the stream
  show ID            one event's main fields, then its deliveries

--since and --until take an RFC 3339 time (2026-11-21T10:00:00Z), a date
(2026-11-21, midnight UTC) or a duration meaning that long ago (2h).
` + actionFlagsHelp

const deliveriesUsage = `usage: hookrelay deliveries <action> [flags]

actions:
  show EVENT_ID      the event's delivery to each endpoint: its state, next due
                     time and every attempt with the merchant's answer

` + actionFlagsHelp

func runEvents(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAction(ctx, "events", eventsUsage, map[string]actionFunc{
		"find": eventsFind, "list": eventsFind, "ls": eventsFind,
		"show": eventsShow, "get": eventsShow,
	}, args, stdout, stderr)
}

func runDeliveries(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAction(ctx, "deliveries", deliveriesUsage, map[string]actionFunc{
		"show": deliveriesShow, "get": deliveriesShow,
	}, args, stdout, stderr)
}

func eventPath(id string) string { return "/v1/events/" + url.PathEscape(id) }

// eventFilterOrder is the order the find filters are given back in hints.
var eventFilterOrder = []string{"reference_id", "type", "source", "since", "until"}

func eventsFind(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("events find", "hookrelay events find [--reference-id R] [--type T] [--source S] [--since T] [--until T] [--limit 50] [flags]", stderr)
	reference := cmd.fs.String("reference-id", "", "the merchant's reference (order id) the events are about")
	typ := cmd.fs.String("type", "", "only this event type, e.g. payment.failed")
	source := cmd.fs.String("source", "", "only events of this source (provider account), e.g. acme-maya")
	since := cmd.fs.String("since", "", "only events stored at or after this time (RFC 3339, date or duration ago)")
	until := cmd.fs.String("until", "", "only events stored before this time (RFC 3339, date or duration ago)")
	limit := cmd.fs.Int("limit", 50, "print at most this many events")
	cursor := cmd.fs.String("cursor", "", "continue a list from where an earlier one stopped")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if *limit < 1 {
		return usageError{"events find: --limit must be at least 1"}
	}
	now := time.Now()
	sinceV, err := timeFlag("since", *since, now)
	if err != nil {
		return err
	}
	untilV, err := timeFlag("until", *until, now)
	if err != nil {
		return err
	}
	f := map[string]string{}
	for k, v := range map[string]string{"reference_id": strings.TrimSpace(*reference), "type": strings.TrimSpace(*typ),
		"source": strings.TrimSpace(*source), "since": sinceV, "until": untilV} {
		if v != "" {
			f[k] = v
		}
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	raws, next, err := listPages(ctx, c, "/v1/events", f, *cursor, *limit)
	if err != nil {
		return err
	}
	empty := "no events match"
	if _, ok := f["reference_id"]; ok {
		empty += "\n(events older than the stream's max age are gone; a lost index comes back with 'hookrelay redrive')"
	}
	return listView[deliver.StoredEvent]{
		empty:  empty,
		item:   "event",
		header: "SEQ\tEVENT\tTYPE\tSOURCE\tSTATUS\tAMOUNT\tRECEIVED AT",
		row: func(w io.Writer, se deliver.StoredEvent) error {
			ev, err := decodeEvent(se.Event)
			if err != nil {
				return fmt.Errorf("event %d in the list: %w", se.Seq, err)
			}
			fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", se.Seq, ev.ID, orDash(ev.Type), orDash(ev.Source),
				orDash(ev.Payment.Status), amountText(ev.Payment), fmtTime(ev.ReceivedAt.Time))
			return nil
		},
		more:    "match",
		cmdline: append([]string{"hookrelay", "events", "find"}, filterFlags(f, eventFilterOrder)...),
	}.print(stdout, cmd.json, raws, next)
}

// decodeEvent reads a stored event's normalized JSON.
func decodeEvent(raw json.RawMessage) (parse.Event, error) {
	var ev parse.Event
	if len(raw) == 0 {
		return ev, fmt.Errorf("no event in the answer")
	}
	err := json.Unmarshal(raw, &ev)
	return ev, err
}

// amountText is "100.00 PHP" ("-" when the event has no amount).
func amountText(p parse.Payment) string {
	switch {
	case p.Amount == nil:
		return "-"
	case p.Currency == nil:
		return *p.Amount
	}
	return *p.Amount + " " + *p.Currency
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// eventWithDeliveries is what 'events show --json' prints: GET /v1/events/{id} with
// the deliveries of GET /v1/events/{id}/deliveries added.
type eventWithDeliveries struct {
	Seq        uint64            `json:"seq"`
	Event      json.RawMessage   `json:"event"`
	Deliveries []json.RawMessage `json:"deliveries"`
}

func eventsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("events show", "hookrelay events show ID [flags]", stderr)
	id, c, err := cmd.idArg(args)
	if err != nil {
		return err
	}
	var se deliver.StoredEvent
	if err := c.do(ctx, http.MethodGet, eventPath(id), nil, &se); err != nil {
		return err
	}
	var ds struct {
		Deliveries []json.RawMessage `json:"deliveries"`
	}
	if err := c.do(ctx, http.MethodGet, eventPath(id)+"/deliveries", nil, &ds); err != nil {
		return err
	}
	if cmd.json {
		out := eventWithDeliveries{Seq: se.Seq, Event: se.Event, Deliveries: ds.Deliveries}
		if out.Deliveries == nil {
			out.Deliveries = []json.RawMessage{}
		}
		return printJSON(stdout, out)
	}
	ev, err := decodeEvent(se.Event)
	if err != nil {
		return fmt.Errorf("event %s: %w", id, err)
	}
	if err := printEvent(stdout, se.Seq, ev); err != nil {
		return err
	}
	views, err := decodeDeliveries(ds.Deliveries)
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	return printDeliveries(stdout, views, time.Now())
}

func printEvent(w io.Writer, seq uint64, ev parse.Event) error {
	k := newKV(w)
	k.add("id", "%s", ev.ID)
	k.add("seq", "%d", seq)
	k.add("type", "%s", orDash(ev.Type))
	k.add("reference", "%s", orDash(ev.ReferenceID))
	k.add("merchant", "%s", orDash(ev.Merchant))
	k.add("source", "%s (%s)", orDash(ev.Source), orDash(ev.Provider))
	if ev.ProviderEventID != nil {
		k.add("provider event", "%s", *ev.ProviderEventID)
	}
	k.add("payment status", "%s", orDash(ev.Payment.Status))
	k.add("amount", "%s", amountText(ev.Payment))
	if ev.Payment.ReceiptNumber != nil {
		k.add("receipt", "%s", *ev.Payment.ReceiptNumber)
	}
	if f := ev.Failure; f != nil {
		reason := f.Reason
		if code := deref(f.ProviderCode); code != "" {
			reason += " (provider code " + code + ")"
		}
		if msg := deref(f.Message); msg != "" {
			reason += ": " + msg
		}
		k.add("failure", "%s", reason)
		if f.NewSessionRequired {
			k.add("new session", "required")
		}
	}
	if ev.OccurredAt != nil {
		k.add("occurred at", "%s", fmtTime(ev.OccurredAt.Time))
	} else {
		k.add("occurred at", "- (the provider sent no time)")
	}
	k.add("received at", "%s", fmtTime(ev.ReceivedAt.Time))
	return k.flush()
}

func decodeDeliveries(raws []json.RawMessage) ([]deliver.DeliveryView, error) {
	out := make([]deliver.DeliveryView, 0, len(raws))
	for _, raw := range raws {
		var v deliver.DeliveryView
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, fmt.Errorf("delivery in the answer: %w", err)
		}
		out = append(out, v)
	}
	return out, nil
}

func deliveriesShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("deliveries show", "hookrelay deliveries show EVENT_ID [flags]", stderr)
	id, c, err := cmd.idArg(args)
	if err != nil {
		return err
	}
	return showAnswer(ctx, c, cmd.json, http.MethodGet, eventPath(id)+"/deliveries", nil, stdout, func(w io.Writer, ds eventDeliveries) error {
		views, err := decodeDeliveries(ds.Deliveries)
		if err != nil {
			return err
		}
		fmt.Fprintf(w, "event %s\n\n", orDash(ds.EventID))
		return printDeliveries(w, views, time.Now())
	})
}

// eventDeliveries is the answer of GET /v1/events/{id}/deliveries.
type eventDeliveries struct {
	EventID    string            `json:"event_id"`
	Deliveries []json.RawMessage `json:"deliveries"`
}

// printDeliveries shows each endpoint's delivery, then its attempts one a line.
func printDeliveries(w io.Writer, ds []deliver.DeliveryView, now time.Time) error {
	if len(ds) == 0 {
		fmt.Fprintln(w, "deliveries: none (no current endpoint subscribes to this event, or its deliveries were never scheduled: see 'hookrelay redrive')")
		return nil
	}
	fmt.Fprintf(w, "deliveries (%d):\n", len(ds))
	for i, d := range ds {
		if i > 0 {
			fmt.Fprintln(w)
		}
		k := newKV(w)
		k.add("endpoint", "%s", d.Endpoint)
		k.add("delivery", "%s", d.ID)
		k.add("state", "%s", orDash(string(d.State)))
		k.add("attempt", "%d", d.Attempt)
		k.add("first attempt", "%s", fmtTime(d.First))
		switch {
		case d.NextDue != nil:
			k.add("next due", "%s", whenText(*d.NextDue, now))
		case d.LeaseEnds != nil:
			k.add("next due", "- (an attempt is running; its lease ends %s)", whenText(*d.LeaseEnds, now))
		default:
			k.add("next due", "-")
		}
		if err := k.flush(); err != nil {
			return err
		}
		if len(d.Attempts) == 0 {
			fmt.Fprintln(w, "  no attempts yet")
			continue
		}
		tw := newTable(w)
		fmt.Fprintln(tw, "  #\tSTART\tDURATION\tSTATUS\tOUTCOME\tERROR\tRESPONSE")
		for _, a := range d.Attempts {
			fmt.Fprintf(tw, "  %d\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Attempt, fmtTime(a.Start), fmtMillis(a.DurationMS), statusText(a.Status),
				orDash(a.Outcome), orDash(snippet(a.Error, 60)), orDash(snippet(a.Body, 60)))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return nil
}

// whenText is a time with how far it is from now: "2026-11-21 10:00:00Z (in 59s)".
func whenText(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	switch {
	case d > 0:
		return fmtTime(t) + " (in " + d.String() + ")"
	case d < 0:
		return fmtTime(t) + " (" + (-d).String() + " ago)"
	}
	return fmtTime(t) + " (now)"
}

// snippet is s for a table cell: control characters made visible, clipped to n runes
// on one line.
func snippet(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) || unicode.IsPrint(r) {
			return r
		}
		return '?'
	}, s)
	return clip(s, n)
}
