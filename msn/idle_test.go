package msn

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/msn-bridge/msn-bridge/internal/testenv/goroutines"
)

const pkgPath = "github.com/msn-bridge/msn-bridge/msn"

// waitGoroutines waits, bounded, until the package's code runs want goroutines, and returns
// what it saw.
func waitGoroutines(want int) int { return goroutines.Await(pkgPath, want, 2*time.Second) }

// An idle logged-in client runs one goroutine, the notification server's reader: events are
// delivered by a goroutine that exists only while there are events, and the keepalive is a
// timer. Both still work: events keep coming after the delivery goroutine exited, and PNG goes
// out at the server's interval.
func TestIdleClientRunsOneGoroutine(t *testing.T) {
	before := goroutines.Started(pkgPath)
	ns := newFakeServer(t)
	ns.escargotNS(escargotSYN, escargotOnline)
	pings := make(chan *fakeConn, 10)
	ns.handle("PNG", func(fc *fakeConn, c *Command) {
		fc.send("QNG 5") // clamped to the minimum interval
		select {
		case pings <- fc:
		default:
		}
	})
	cfg := testConfig(ns, passportServer(t), nil)
	cfg.PingInterval = 0 // the server's interval
	c, l := login(t, cfg)
	waitEvent[*PersonalMessageChanged](t, l, nil)
	var fc *fakeConn
	select {
	case fc = <-pings: // the first PNG goes out at once
	case <-time.After(10 * time.Second):
		t.Fatal("no PNG after login")
	}
	if got := waitGoroutines(before + 1); got != before+1 {
		t.Fatalf("idle client runs %d goroutines, want 1 (the reader)", got-before)
	}
	// Events still flow after the delivery goroutine has gone.
	fc.send("NLN AWY bob@example.com Bob 0")
	waitEvent(t, l, func(e *PresenceChanged) bool { return e.Status == StatusAway })
	if got := waitGoroutines(before + 1); got != before+1 {
		t.Fatalf("after an event, %d goroutines, want 1", got-before)
	}
	_ = c.Close()
	if got := waitGoroutines(before); got != before {
		t.Fatalf("after Close, %d goroutines of the client remain", got-before)
	}
}

// The event queue delivers every event once, in order, one at a time, with its delivery
// goroutine coming and going; wait after finish returns only once the handler call in progress
// and the queued events are done.
func TestEventQueueDelivery(t *testing.T) {
	var q eventQueue
	var mu sync.Mutex
	var got []int
	inHandler := 0
	release := make(chan struct{})
	q.init(1<<20, func(ev Event) {
		mu.Lock()
		inHandler++
		if inHandler != 1 {
			t.Error("two deliveries at once")
		}
		mu.Unlock()
		n := int(ev.(*SystemMessage).Type)
		if n == -1 {
			<-release
		} else if rand.IntN(8) == 0 {
			time.Sleep(time.Duration(rand.IntN(200)) * time.Microsecond)
		}
		mu.Lock()
		inHandler--
		got = append(got, n)
		mu.Unlock()
	})
	if !q.push(&SystemMessage{Type: 0}, false) {
		t.Fatal("push refused")
	}
	q.release(&SystemMessage{Type: -2}) // the first event, as LoggedIn
	const bursts, perBurst = 50, 40
	next := 1
	for range bursts {
		for range perBurst {
			q.push(&SystemMessage{Type: next}, false)
			next++
		}
		if rand.IntN(2) == 0 {
			time.Sleep(time.Duration(rand.IntN(500)) * time.Microsecond) // let the goroutine exit
		}
	}
	q.push(&SystemMessage{Type: -1}, false) // blocks the handler until release
	q.push(&SystemMessage{Type: next}, false)
	q.finish()
	q.push(&SystemMessage{Type: 99999}, false) // after finish: dropped
	waited := make(chan struct{})
	go func() { q.wait(); close(waited) }()
	select {
	case <-waited:
		t.Fatal("wait returned while the handler was still running")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		t.Fatal("wait never returned")
	}
	want := []int{-2, 0}
	for i := 1; i < next; i++ {
		want = append(want, i)
	}
	want = append(want, -1, next)
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(got, want) {
		t.Fatalf("delivered %d events, want %d in order (first difference at %d)", len(got), len(want), firstDiff(got, want))
	}
}

func firstDiff(a, b []int) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// chunkReader returns at most n bytes per Read, and err once its data is consumed.
type chunkReader struct {
	data []byte
	n    int
	err  error
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, r.err
	}
	k := copy(p[:min(len(p), r.n)], r.data)
	r.data = r.data[k:]
	return k, nil
}

// The Reader frames the same commands whatever the sizes of the reads under it, across its
// switches between its small buffer and a large one: lines and payloads longer than either
// buffer, reads of exactly the small buffer's size, single bytes; it gives the large buffer
// back once the source is drained, and reports the source's error after the last command.
func TestReaderChunking(t *testing.T) {
	var b bytes.Buffer
	b.Write(seedStream())
	long := strings.Repeat("x", largeReadBuffer+300)
	b.WriteString("PRP MFN " + long + "\r\n")
	b.WriteString("UBX bob@example.com " + itoa(2*largeReadBuffer) + "\r\n" + strings.Repeat("p", 2*largeReadBuffer))
	b.WriteString("PRP MFN " + strings.Repeat("y", smallReadBuffer-10) + "\r\n")
	b.WriteString("CHG 9 NLN 0\n") // bare LF
	stream := b.Bytes()

	parse := func(r io.Reader) ([]*Command, error, *Reader) {
		rd := NewReader(r, ClientPayloads)
		var out []*Command
		for {
			c, err := rd.ReadCommand()
			if err != nil {
				return out, err, rd
			}
			out = append(out, c.Clone())
		}
	}
	want, err, _ := parse(bytes.NewReader(stream))
	if !errors.Is(err, io.EOF) || len(want) < 10 {
		t.Fatalf("whole stream: %d commands, %v", len(want), err)
	}
	for _, n := range []int{1, 7, smallReadBuffer - 1, smallReadBuffer, smallReadBuffer + 1, largeReadBuffer, largeReadBuffer + 1, 1 << 16} {
		t.Run(fmt.Sprintf("reads of %d", n), func(t *testing.T) {
			srcErr := errors.New("connection reset")
			got, err, rd := parse(&chunkReader{data: stream, n: n, err: srcErr})
			if !errors.Is(err, srcErr) {
				t.Fatalf("error after the last command: %v, want the source's", err)
			}
			if len(got) != len(want) {
				t.Fatalf("%d commands, want %d", len(got), len(want))
			}
			for i := range want {
				if got[i].String() != want[i].String() || !bytes.Equal(got[i].Payload, want[i].Payload) {
					t.Fatalf("command %d = %q, want %q", i, got[i].String(), want[i].String())
				}
			}
			if rd.buf.large != nil {
				t.Error("the large buffer was kept after the source was drained")
			}
		})
	}
}

// Contacts keep what the server sent, in their compact stored form: GUIDs in either case or in
// no GUID syntax at all, names equal to the handle or not, one group, several, none, or an
// emptied list, a PSM with or without current media.
func TestContactStoredForm(t *testing.T) {
	c := &Client{groups: map[string]*Group{"g1": {ID: "g1", Name: "One"}}}
	cases := []Contact{
		{Handle: "a@x.com", GUID: "0b7a1b22-4f3e-4c1a-9d2e-0123456789ab", StoredName: "a@x.com", FriendlyName: "a@x.com",
			Lists: ListForward | ListAllow, Groups: []string{"g1"}, Status: StatusOnline, PSM: "hi"},
		{Handle: "b@x.com", GUID: "0B7A1B22-4F3E-4C1A-9D2E-0123456789CD", StoredName: "Bee", FriendlyName: "Bee",
			Groups: []string{"g1", "g2", strings.Repeat("g", 300)}, Status: StatusBusy,
			PSM: "", Media: CurrentMedia{App: "", Type: "Music", Enabled: true, Format: "{0} - {1}", Args: []string{"Song", "Band"}}},
		{Handle: "c@x.com", GUID: "not-a-guid", StoredName: "Cee", FriendlyName: "Sea", Groups: []string{}, Status: StatusIdle,
			PSM: "ps", Media: CurrentMedia{Type: "Games", Enabled: true, Format: "{0}", Args: []string{"Chess"}}, MSNObject: "<msnobj/>", Capabilities: 7},
		{Handle: "d@x.com", GUID: "0b7a1B22-4f3e-4c1a-9d2e-0123456789ff", Status: StatusOffline},
		{Handle: "tel:123", Status: StatusOffline},
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, want := range cases {
		ct := c.contacts.getOrAdd(want.Handle)
		ct.lists = want.Lists
		ct.setName(want.StoredName)
		ct.setFriendly(want.FriendlyName)
		if want.GUID != "" {
			c.setGUIDLocked(ct, want.GUID)
		}
		groups := slices.Clone(want.Groups)
		for i, g := range groups {
			groups[i] = c.internGroupLocked(g)
		}
		ct.setGroups(groups)
		ct.status, ct.caps = statusIndex(want.Status), want.Capabilities
		ct.setMSNObject(want.MSNObject)
		media := ""
		if !want.Media.IsZero() {
			media = want.Media.String()
		}
		ct.setUBX(want.PSM, media)
	}
	// Changes leave dead records in the store's arena until it compacts: many PSM changes,
	// ending where they started, must leave every contact as it was.
	compacted, lastUsed := false, 0
	for round := range 300 {
		for _, want := range cases {
			ct, _ := c.contacts.get(want.Handle)
			media := ct.mediaText()
			ct.setUBX(fmt.Sprintf("%s, change %d", strings.Repeat("p", round%50), round), media)
			if round == 299 {
				ct.setUBX(want.PSM, media)
			}
		}
		used, _ := c.contacts.arena.Size()
		compacted = compacted || used < lastUsed
		lastUsed = used
	}
	if !compacted {
		t.Error("the store's arena was never compacted")
	}
	for _, want := range cases {
		ct, _ := c.contacts.get(want.Handle)
		got := c.publicLocked(ct)
		if want.Media.IsZero() {
			want.Media = CurrentMedia{}
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("stored %+v\ngave    %+v", want, got)
		}
	}
	if ct := c.contactByGUIDLocked("0B7A1B22-4f3e-4C1A-9d2e-0123456789ab"); !ct.ok() || ct.handle() != "a@x.com" {
		t.Errorf("GUID lookup ignoring case found %v", ct)
	}
	if ct := c.contactByGUIDLocked("NOT-A-GUID"); !ct.ok() || ct.handle() != "c@x.com" {
		t.Errorf("lookup of a non-GUID id found %v", ct)
	}
	ct, _ := c.contacts.get("c@x.com")
	c.deleteContactLocked(ct)
	if _, kept := c.otherGUIDs["c@x.com"]; kept || len(c.otherGUIDs) != 1 {
		t.Errorf("ids kept after deleting a contact: %v", c.otherGUIDs)
	}
}
