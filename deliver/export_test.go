package deliver

import (
	"time"

	"github.com/nats-io/nats.go"
)

// JobMsg is a job message as the schedule's hand-off writes it, for tests that put a
// stale or duplicate job on the stream.
func JobMsg(subject, id string, attempt int, first, due time.Time, event []byte) *nats.Msg {
	_, endpoint, _ := splitDeliveryID(id)
	j := Job{ID: id, Endpoint: endpoint, Attempt: attempt, First: first, Due: due, Event: event}
	return j.msg(subject)
}
