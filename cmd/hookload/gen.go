package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// The two providers' sources in the config hookload writes.
const (
	mayaSource   = "load-maya"
	paytiaSource = "load-paytia"
)

// Placeholders put into the templates where each request's own values go.
const (
	phID  = "HOOKLOAD_PAYMENT_ID"
	phRef = "HOOKLOAD_REFERENCE"
)

// slot is what goes between two segments of a template.
type slot uint8

const (
	slotID  slot = iota // PayMaya payment id
	slotRef             // the merchant's reference (PayMaya requestReferenceNumber, Paytia reference_id)
)

// template is a sample callback cut at the places where a request's unique values go:
// body = segs[0] + value(slots[0]) + segs[1] + … + segs[len(slots)].
type template struct {
	name     string
	provider string // paymaya or paytia
	segs     [][]byte
	slots    []slot
	size     int // bytes of the segments
}

// Generator builds the callbacks of a run. Request i is a pure function of i and the
// run's nonce, and every i makes a distinct event: the event id covers the PayMaya
// payment id (which carries i) and every Paytia field (reference_id carries i).
type Generator struct {
	nonce        string // 8 hex digits, different in every run
	maya, paytia []*template
	mayaPerMille uint64 // share of PayMaya callbacks, in thousandths
}

// loadTemplates reads PayMaya's *.json and Paytia's *.form samples under testdata
// (parse/testdata), skipping the golden files.
func loadTemplates(testdata string) (maya, paytia []*template, err error) {
	if maya, err = readTemplates(filepath.Join(testdata, "paymaya", "*.json"), mayaTemplate); err != nil {
		return nil, nil, err
	}
	if paytia, err = readTemplates(filepath.Join(testdata, "paytia", "*.form"), paytiaTemplate); err != nil {
		return nil, nil, err
	}
	if len(maya) == 0 || len(paytia) == 0 {
		return nil, nil, fmt.Errorf("no sample callbacks under %s (want paymaya/*.json and paytia/*.form)", testdata)
	}
	return maya, paytia, nil
}

// readTemplates makes a template with mk of every file matching pattern but the
// golden files (*.golden.json).
func readTemplates(pattern string, mk func(name string, raw []byte) (*template, error)) ([]*template, error) {
	files, err := filepath.Glob(pattern)
	if err != nil {
		return nil, err
	}
	var out []*template
	for _, f := range files {
		if strings.HasSuffix(f, ".golden.json") {
			continue
		}
		raw, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		t, err := mk(filepath.Base(f), raw)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", f, err)
		}
		out = append(out, t)
	}
	return out, nil
}

// mayaTemplate makes a PayMaya sample's id and requestReferenceNumber the slots.
func mayaTemplate(name string, raw []byte) (*template, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	m["id"] = json.RawMessage(strconv.Quote(phID))
	m["requestReferenceNumber"] = json.RawMessage(strconv.Quote(phRef))
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return cutTemplate(name, "paymaya", b)
}

// paytiaTemplate makes a Paytia sample's reference_id the slot.
func paytiaTemplate(name string, raw []byte) (*template, error) {
	form, err := url.ParseQuery(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, err
	}
	form.Set("reference_id", phRef)
	return cutTemplate(name, "paytia", []byte(form.Encode()))
}

// cutTemplate splits b at the placeholders.
func cutTemplate(name, provider string, b []byte) (*template, error) {
	t := &template{name: name, provider: provider}
	for {
		i, j := bytes.Index(b, []byte(phID)), bytes.Index(b, []byte(phRef))
		if i < 0 && j < 0 {
			break
		}
		s, n := slotID, len(phID)
		if i < 0 || (j >= 0 && j < i) {
			i, s, n = j, slotRef, len(phRef)
		}
		t.segs = append(t.segs, b[:i])
		t.slots = append(t.slots, s)
		b = b[i+n:]
	}
	t.segs = append(t.segs, b)
	if len(t.slots) == 0 {
		return nil, fmt.Errorf("no placeholder in %q", b)
	}
	for _, s := range t.segs {
		t.size += len(s)
	}
	return t, nil
}

// NewGenerator mixes PayMaya (share mayaShare, 0..1) and Paytia callbacks.
func NewGenerator(nonce string, maya, paytia []*template, mayaShare float64) *Generator {
	return &Generator{
		nonce: nonce, maya: slices.Clone(maya), paytia: slices.Clone(paytia),
		mayaPerMille: uint64(min(max(mayaShare, 0), 1)*1000 + 0.5),
	}
}

// mix64 is SplitMix64's finalizer: a cheap, well-spread hash of i.
func mix64(i uint64) uint64 {
	i += 0x9e3779b97f4a7c15
	i = (i ^ (i >> 30)) * 0xbf58476d1ce4e5b9
	i = (i ^ (i >> 27)) * 0x94d049bb133111eb
	return i ^ (i >> 31)
}

// pick chooses request i's template.
func (g *Generator) pick(i uint64) *template {
	h := mix64(i)
	if h%1000 < g.mayaPerMille {
		return g.maya[(h/1000)%uint64(len(g.maya))]
	}
	return g.paytia[(h/1000)%uint64(len(g.paytia))]
}

// Body returns request i: its template (provider) and body.
func (g *Generator) Body(i uint64) (*template, []byte) {
	t := g.pick(i)
	b := make([]byte, 0, t.size+64)
	for k, s := range t.slots {
		b = append(b, t.segs[k]...)
		switch s {
		case slotID: // UUID-shaped, like PayMaya's: nonce-0000-4000-8000-<i>
			b = append(b, g.nonce...)
			b = append(b, "-0000-4000-8000-"...)
			b = appendHex12(b, i)
		case slotRef:
			if t.provider == "paymaya" {
				b = append(b, "HL-"...)
			} else {
				b = append(b, "hl_"...)
			}
			b = append(b, g.nonce...)
			b = append(b, '_')
			b = strconv.AppendUint(b, i, 10)
		}
	}
	return t, append(b, t.segs[len(t.segs)-1]...)
}

// appendHex12 appends i as 12 lower-case hex digits (zero-padded; i < 2^48).
func appendHex12(b []byte, i uint64) []byte {
	const digits = "0123456789abcdef"
	var buf [12]byte
	for k := 11; k >= 0; k-- {
		buf[k] = digits[i&0xf]
		i >>= 4
	}
	return append(b, buf[:]...)
}
