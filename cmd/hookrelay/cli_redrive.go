package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/hookrelay/hookrelay/deliver"
)

const redriveSynopsis = "hookrelay redrive --since T [--endpoint ID] [--yes] [flags]"

const redriveUsage = `usage: hookrelay redrive --since T [--endpoint ID] [--yes] [flags]

Disaster recovery after Redis lost the retry schedule: every delivery of the events
stored since T that the schedule does not know is scheduled again, with the same
webhook-id (merchants may see some events twice). Deliveries the schedule knows,
done ones included, are left as they are; the event index is rebuilt as well.
It asks before starting unless --yes.

--since takes an RFC 3339 time (2026-11-21T10:00:00Z), a date (2026-11-21, midnight
UTC) or a duration meaning that long ago (2h). It also takes --admin-url URL (env
HOOKRELAY_ADMIN_URL, default http://127.0.0.1:8081), --json (the API's JSON, for
scripts) and --timeout (10m here: the server reads every event since T before it
answers). The admin token is read from HOOKRELAY_ADMIN_TOKEN.`

// redriveTimeout is redrive's default --timeout: one request reads up to the server's
// limit of events (a million) before it answers.
const redriveTimeout = 10 * time.Minute

// runRedrive is disaster recovery after Redis lost the schedule: every delivery of
// the events stored since --since that the schedule does not know is scheduled
// again (same webhook-id); the ones it knows, done ones included, are left alone.
func runRedrive(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "help" {
		fmt.Fprintln(stdout, redriveUsage)
		return nil
	}
	cmd := newCLICommand("redrive", redriveSynopsis, stderr)
	cmd.timeout = redriveTimeout
	cmd.fs.Lookup("timeout").DefValue = redriveTimeout.String()
	since := cmd.fs.String("since", "", "required: redrive the events stored at or after this time (RFC 3339, date or duration ago)")
	endpoint := cmd.fs.String("endpoint", "", "only this endpoint's deliveries")
	yes := cmd.fs.Bool("yes", false, "do not ask before redriving")
	if _, err := cmd.parse(args, 0, 0); err != nil {
		return err
	}
	if strings.TrimSpace(*since) == "" {
		cmd.fs.Usage()
		return usageError{"redrive: --since required: the time Redis lost its data (or earlier), e.g. --since 2026-11-21T09:00:00Z or --since 6h"}
	}
	sinceV, err := timeFlag("since", *since, time.Now())
	if err != nil {
		return err
	}
	ep := strings.TrimSpace(*endpoint)
	c, err := cmd.client()
	if err != nil {
		return err
	}
	scope := "every endpoint"
	if ep != "" {
		scope = "endpoint " + ep
	}
	if !*yes {
		q := fmt.Sprintf("Schedule again every delivery (to %s) of the events stored since %s that the schedule does not know? "+
			"Merchants may receive some events a second time (same webhook-id).", scope, sinceV)
		if err := confirm(stderr, q); err != nil {
			return err
		}
	}
	body := map[string]string{"since": sinceV}
	if ep != "" {
		body["endpoint"] = ep
	}
	return showAnswer(ctx, c, cmd.json, http.MethodPost, "/v1/redrive", body, stdout, func(w io.Writer, res deliver.RedriveResult) error {
		fmt.Fprintf(w, "%s read, %s scheduled again, %s already known\n",
			plural(res.Events, "event", "events"), plural(res.Scheduled, "delivery", "deliveries"), commas(res.Known))
		if res.Truncated {
			fmt.Fprintln(w, "stopped at the server's limit of events per redrive: events stored after those were not read;\n"+
				"redrive again with a --since later than the last of them (hookrelay events find --since … shows stored events)")
		}
		return nil
	})
}
