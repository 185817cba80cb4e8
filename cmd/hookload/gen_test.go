package main

import (
	"bytes"
	"testing"
	"time"

	"github.com/hookrelay/hookrelay/parse"
)

func testGenerator(t *testing.T, nonce string, share float64) *Generator {
	t.Helper()
	maya, paytia, err := loadTemplates("../../parse/testdata")
	if err != nil {
		t.Fatal(err)
	}
	if len(maya) < 5 || len(paytia) < 5 {
		t.Fatalf("%d PayMaya and %d Paytia templates", len(maya), len(paytia))
	}
	return NewGenerator(nonce, maya, paytia, share)
}

// eventID runs the body through hookrelay's own parser, as ingest would.
func eventID(t *testing.T, tpl *template, body []byte) string {
	t.Helper()
	var ev *parse.Event
	var err error
	if tpl.provider == "paymaya" {
		ev, err = parse.PayMaya(body, parse.Source{ID: mayaSource, Provider: "paymaya", Merchant: "loadco"}, time.Now())
	} else {
		form, ferr := parse.Form(string(body))
		if ferr != nil {
			t.Fatalf("%s: %v", tpl.name, ferr)
		}
		ev, err = parse.Paytia(form, parse.Source{ID: paytiaSource, Provider: "paytia", Merchant: "loadco"}, time.Now())
	}
	if err != nil {
		t.Fatalf("%s: parser refused %s: %v", tpl.name, body, err)
	}
	return ev.ID
}

// TestGeneratorUniqueEvents: every request is a callback the parser accepts and a
// distinct event (its own event id), the mix follows the share and uses every sample.
func TestGeneratorUniqueEvents(t *testing.T) {
	g := testGenerator(t, "0a1b2c3d", 0.5)
	const n = 20000
	ids := make(map[string]uint64, n)
	used := map[string]int{}
	maya := 0
	for i := range uint64(n) {
		tpl, body := g.Body(i)
		id := eventID(t, tpl, body)
		if j, dup := ids[id]; dup {
			t.Fatalf("requests %d and %d are the same event %s", j, i, id)
		}
		ids[id] = i
		used[tpl.name]++
		if tpl.provider == "paymaya" {
			maya++
		}
	}
	if maya < n*45/100 || maya > n*55/100 {
		t.Errorf("%d of %d PayMaya with share 0.5", maya, n)
	}
	if want := len(g.maya) + len(g.paytia); len(used) != want {
		t.Errorf("%d of %d samples used: %v", len(used), want, used)
	}
}

// TestGeneratorDeterministic: request i is a function of i and the nonce; another run
// (nonce) makes other events.
func TestGeneratorDeterministic(t *testing.T) {
	a, b := testGenerator(t, "0a1b2c3d", 0.5), testGenerator(t, "ffffffff", 0.5)
	for i := range uint64(200) {
		t1, b1 := a.Body(i)
		_, b2 := a.Body(i)
		if !bytes.Equal(b1, b2) {
			t.Fatalf("request %d differs between calls:\n%s\n%s", i, b1, b2)
		}
		t3, b3 := b.Body(i)
		if eventID(t, t1, b1) == eventID(t, t3, b3) {
			t.Fatalf("request %d is the same event under two nonces", i)
		}
	}
}

func TestGeneratorShare(t *testing.T) {
	for _, share := range []float64{0, 1} {
		g := testGenerator(t, "0a1b2c3d", share)
		for i := range uint64(1000) {
			if tpl := g.pick(i); (tpl.provider == "paymaya") != (share == 1) {
				t.Fatalf("share %v: request %d is %s", share, i, tpl.provider)
			}
		}
	}
}

func TestAppendHex12(t *testing.T) {
	if got := string(appendHex12(nil, 0xabc)); got != "000000000abc" {
		t.Errorf("appendHex12 = %q", got)
	}
}

func BenchmarkGeneratorBody(b *testing.B) {
	maya, paytia, err := loadTemplates("../../parse/testdata")
	if err != nil {
		b.Fatal(err)
	}
	g := NewGenerator("0a1b2c3d", maya, paytia, 0.5)
	b.ReportAllocs()
	for i := range uint64(b.N) {
		g.Body(i)
	}
}
