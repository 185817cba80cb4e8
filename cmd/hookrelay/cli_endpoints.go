package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"github.com/hookrelay/hookrelay/admin"
)

const endpointsUsage = `usage: hookrelay endpoints <action> [flags]

actions:
  list [--merchant M]          the merchant endpoints
  show ID                      one endpoint
  create --id ID --merchant M --url URL [--types payment.*,refund.failed]
         [--sources S1,S2] [--max-in-flight N] [--description TEXT]
         [--secret whsec_…] [--header Name=Value]… [--disabled]
                               add an endpoint; prints its signing secret once
  enable ID                    resume deliveries
  disable ID                   hold deliveries (they wait; nothing is dropped)
  delete ID                    remove it (its waiting deliveries become dead letters)
  rotate-secret ID [--grace 24h] [--secret whsec_…]
                               new signing secret; the old one also signs for --grace

every action takes --admin-url URL (env HOOKRELAY_ADMIN_URL, default
http://127.0.0.1:8081), --json (the API's JSON, for scripts) and --timeout 30s.
The admin token is read from HOOKRELAY_ADMIN_TOKEN.`

func runEndpoints(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return runAction(ctx, "endpoints", endpointsUsage, map[string]actionFunc{
		"list": endpointsList, "ls": endpointsList,
		"show": endpointsShow, "get": endpointsShow,
		"create": endpointsCreate,
		"enable": endpointsSetEnabled(true), "disable": endpointsSetEnabled(false),
		"delete": endpointsDelete, "rm": endpointsDelete,
		"rotate-secret": endpointsRotate,
	}, args, stdout, stderr)
}

func endpointPath(id string) string { return "/v1/endpoints/" + url.PathEscape(id) }

func endpointsList(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("endpoints list", "hookrelay endpoints list [--merchant M] [flags]", stderr)
	merchant := cmd.fs.String("merchant", "", "only this merchant's endpoints")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	// Endpoints are few: read every page.
	all, _, err := listPages(ctx, c, "/v1/endpoints", map[string]string{"merchant": *merchant}, "", 0)
	if err != nil {
		return err
	}
	// Every page was read: no next cursor, so no "more" line.
	return listView[admin.EndpointView]{
		empty:  "no endpoints",
		item:   "endpoint",
		header: "ID\tMERCHANT\tENABLED\tURL\tTYPES\tMAX IN FLIGHT",
		row: func(w io.Writer, e admin.EndpointView) error {
			fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", e.ID, e.Merchant, yesNo(e.Enabled), e.URL, typesText(e.Types), maxInFlightText(e.MaxInFlight))
			return nil
		},
	}.print(stdout, cmd.json, all, "")
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func typesText(types []string) string {
	if len(types) == 0 {
		return "(all)"
	}
	return strings.Join(types, ",")
}

func maxInFlightText(n int) string {
	if n == 0 {
		return "10 (default)"
	}
	return strconv.Itoa(n)
}

func endpointsShow(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("endpoints show", "hookrelay endpoints show ID [flags]", stderr)
	id, c, err := cmd.idArg(args)
	if err != nil {
		return err
	}
	return showAnswer(ctx, c, cmd.json, http.MethodGet, endpointPath(id), nil, stdout, printEndpoint)
}

func printEndpoint(w io.Writer, e admin.EndpointView) error {
	k := newKV(w)
	k.add("id", "%s", e.ID)
	k.add("merchant", "%s", e.Merchant)
	k.add("url", "%s", e.URL)
	if e.Enabled {
		k.add("enabled", "yes")
	} else {
		k.add("enabled", "no (deliveries are held until it is enabled)")
	}
	k.add("types", "%s", typesText(e.Types))
	if len(e.Sources) == 0 {
		k.add("sources", "(all of the merchant's)")
	} else {
		k.add("sources", "%s", strings.Join(e.Sources, ","))
	}
	k.add("max in flight", "%s", maxInFlightText(e.MaxInFlight))
	if e.Description != "" {
		k.add("description", "%s", e.Description)
	}
	if len(e.Headers) > 0 {
		k.add("extra headers", "%s (values not shown)", strings.Join(e.Headers, ", "))
	}
	if e.Secret != "" {
		k.add("secret", "%s (shown only now: give it to the merchant)", e.Secret)
	}
	if e.PreviousSecretUntil != nil {
		k.add("previous secret", "still signs until %s", fmtTime(*e.PreviousSecretUntil))
	}
	k.add("created", "%s", fmtTime(e.CreatedAt))
	k.add("updated", "%s", fmtTime(e.UpdatedAt))
	return k.flush()
}

// headerFlags collects repeated --header Name=Value.
type headerFlags map[string]string

func (h headerFlags) String() string { return "" }

func (h headerFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || strings.TrimSpace(name) == "" {
		return fmt.Errorf("want Name=Value, got %q", v)
	}
	h[strings.TrimSpace(name)] = value
	return nil
}

func endpointsCreate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("endpoints create", "hookrelay endpoints create --id ID --merchant M --url URL [flags]", stderr)
	id := cmd.fs.String("id", "", "endpoint id (required): lower-case letters, digits, - and _")
	merchant := cmd.fs.String("merchant", "", "merchant id (required)")
	target := cmd.fs.String("url", "", "where deliveries are POSTed (required)")
	types := cmd.fs.String("types", "", "comma-separated event types or families, e.g. payment.*,refund.failed (default: all)")
	sources := cmd.fs.String("sources", "", "comma-separated source ids (default: all of the merchant's)")
	maxInFlight := cmd.fs.Int("max-in-flight", 0, "concurrent attempts, 1-1000 (default 10)")
	description := cmd.fs.String("description", "", "free text for on-call")
	secret := cmd.fs.String("secret", "", "signing secret whsec_… (default: generated)")
	disabled := cmd.fs.Bool("disabled", false, "create it disabled (deliveries held)")
	headers := headerFlags{}
	cmd.fs.Var(headers, "header", "extra request header Name=Value (repeatable)")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	var missing []string
	for name, v := range map[string]string{"--id": *id, "--merchant": *merchant, "--url": *target} {
		if v == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		cmd.fs.Usage()
		return usageError{"endpoints create: " + strings.Join(missing, ", ") + " required"}
	}
	body := map[string]any{"id": *id, "merchant": *merchant, "url": *target, "enabled": !*disabled}
	if cmd.isSet("types") {
		body["types"] = splitList(*types)
	}
	if cmd.isSet("sources") {
		body["sources"] = splitList(*sources)
	}
	if cmd.isSet("max-in-flight") {
		body["max_in_flight"] = *maxInFlight
	}
	if cmd.isSet("description") {
		body["description"] = *description
	}
	if cmd.isSet("secret") {
		body["secret"] = *secret
	}
	if len(headers) > 0 {
		body["headers"] = map[string]string(headers)
	}
	c, err := cmd.client()
	if err != nil {
		return err
	}
	return showAnswer(ctx, c, cmd.json, http.MethodPost, "/v1/endpoints", body, stdout, func(w io.Writer, e admin.EndpointView) error {
		fmt.Fprintf(w, "endpoint %s created\n\n", e.ID)
		return printEndpoint(w, e)
	})
}

// endpointsSetEnabled is the action enable (enabled) or disable.
func endpointsSetEnabled(enabled bool) actionFunc {
	return func(ctx context.Context, args []string, stdout, stderr io.Writer) error {
		name := "disable"
		if enabled {
			name = "enable"
		}
		cmd := newCLICommand("endpoints "+name, "hookrelay endpoints "+name+" ID [flags]", stderr)
		id, c, err := cmd.idArg(args)
		if err != nil {
			return err
		}
		var raw json.RawMessage
		if err := c.do(ctx, http.MethodPut, endpointPath(id), map[string]bool{"enabled": enabled}, &raw); err != nil {
			return err
		}
		if cmd.json {
			return printRaw(stdout, raw)
		}
		if enabled {
			fmt.Fprintf(stdout, "endpoint %s enabled: held deliveries go out again\n", id)
		} else {
			fmt.Fprintf(stdout, "endpoint %s disabled: its deliveries are held until 'hookrelay endpoints enable %s'\n", id, id)
		}
		return nil
	}
}

func endpointsDelete(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("endpoints delete", "hookrelay endpoints delete ID [flags]", stderr)
	id, c, err := cmd.idArg(args)
	if err != nil {
		return err
	}
	if err := c.do(ctx, http.MethodDelete, endpointPath(id), nil, nil); err != nil {
		return err
	}
	if cmd.json {
		return nil // 204: the API answers nothing
	}
	fmt.Fprintf(stdout, "endpoint %s deleted; deliveries it still had waiting become dead letters\n", id)
	return nil
}

func endpointsRotate(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cmd := newCLICommand("endpoints rotate-secret", "hookrelay endpoints rotate-secret ID [--grace 24h] [--secret whsec_…] [flags]", stderr)
	grace := cmd.fs.Duration("grace", admin.DefaultGrace, "how long the old secret also signs (0s: stop at once; at most 720h)")
	secret := cmd.fs.String("secret", "", "the new secret whsec_… (default: generated)")
	id, c, err := cmd.idArg(args)
	if err != nil {
		return err
	}
	body := map[string]string{}
	if cmd.isSet("grace") {
		body["grace"] = grace.String()
	}
	if *secret != "" {
		body["secret"] = *secret
	}
	return showAnswer(ctx, c, cmd.json, http.MethodPost, endpointPath(id)+"/rotate-secret", body, stdout, printRotated)
}

// printRotated shows an endpoint's new secret and how long the old one still signs.
func printRotated(w io.Writer, e admin.EndpointView) error {
	k := newKV(w)
	k.add("endpoint", "%s", e.ID)
	k.add("new secret", "%s (shown only now: give it to the merchant)", e.Secret)
	if e.PreviousSecretUntil != nil {
		k.add("old secret", "also signs until %s", fmtTime(*e.PreviousSecretUntil))
	} else {
		k.add("old secret", "no longer signs")
	}
	return k.flush()
}
