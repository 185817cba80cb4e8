package main

import "testing"

func TestServerSide(t *testing.T) {
	a := `# HELP hookrelay_ingest_request_duration_seconds x
hookrelay_ingest_request_duration_seconds_bucket{provider="paymaya",source="m",le="0.001"} 10
hookrelay_ingest_request_duration_seconds_bucket{provider="paymaya",source="m",le="0.01"} 90
hookrelay_ingest_request_duration_seconds_bucket{provider="paymaya",source="m",le="0.1"} 100
hookrelay_ingest_request_duration_seconds_bucket{provider="paymaya",source="m",le="+Inf"} 100
hookrelay_ingest_request_duration_seconds_sum{provider="paymaya",source="m"} 0.5
hookrelay_ingest_request_duration_seconds_count{provider="paymaya",source="m"} 100
`
	b := `hookrelay_ingest_request_duration_seconds_bucket{provider="paytia",source="p",le="0.001"} 0
hookrelay_ingest_request_duration_seconds_bucket{provider="paytia",source="p",le="0.01"} 0
hookrelay_ingest_request_duration_seconds_bucket{provider="paytia",source="p",le="0.1"} 100
hookrelay_ingest_request_duration_seconds_bucket{provider="paytia",source="p",le="+Inf"} 100
hookrelay_ingest_request_duration_seconds_sum{provider="paytia",source="p"} 1.5
hookrelay_ingest_request_duration_seconds_count{provider="paytia",source="p"} 100
`
	s := serverSide([]string{a, b})
	want := ServerSide{IngestN: 200, IngestMeanMS: 10, IngestP50LeMS: 100, IngestP99LeMS: 100, AttemptMeanMS: -1, AttemptP99LeMS: -1}
	if s != want {
		t.Errorf("serverSide = %+v, want %+v", s, want)
	}
	s = serverSide([]string{a})
	if s.IngestP50LeMS != 10 || s.IngestP99LeMS != 100 {
		t.Errorf("one process: %+v", s)
	}
}
