package bridge

import (
	"context"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"encoding/xml"
	"fmt"
	"io"
	"strconv"
	"sync"
	"unicode/utf16"

	"github.com/msn-bridge/msn-bridge/msn"
)

// Until package msn parses msnobjs, the tests parse the msnobjs they make themselves.
func init() {
	if _, err := msn.ParseMSNObject(testMSNObject("a@b.c", msn.ObjectDisplayPicture, []byte("x")).XML); err != nil {
		parseMSNObject = fakeParseMSNObject
	}
}

// testObject is an msnobj made by the tests, with its XML as official clients write it.
type testObject struct {
	msn.MSNObject
	XML  string
	Data []byte
}

func testMSNObject(creator string, typ int, data []byte) testObject {
	sum := sha1.Sum(data)
	sha1d := base64.StdEncoding.EncodeToString(sum[:])
	u := utf16.Encode([]rune("pic\x00"))
	fb := make([]byte, 2*len(u))
	for i, r := range u {
		binary.LittleEndian.PutUint16(fb[2*i:], r)
	}
	friendly := base64.StdEncoding.EncodeToString(fb)
	size := strconv.Itoa(len(data))
	c := sha1.Sum([]byte("Creator" + creator + "Size" + size + "Type" + strconv.Itoa(typ) + "Location" + "0" +
		"Friendly" + friendly + "SHA1D" + sha1d))
	sha1c := base64.StdEncoding.EncodeToString(c[:])
	x := fmt.Sprintf(`<msnobj Creator="%s" Size="%s" Type="%d" Location="0" Friendly="%s" SHA1D="%s" SHA1C="%s"/>`,
		creator, size, typ, friendly, sha1d, sha1c)
	return testObject{
		MSNObject: msn.MSNObject{Creator: creator, Size: int64(len(data)), Type: typ, Location: "0", Friendly: "pic", SHA1D: sha1d, SHA1C: sha1c},
		XML:       x, Data: data,
	}
}

func fakeParseMSNObject(s string) (msn.MSNObject, error) {
	var v struct {
		Creator  string `xml:"Creator,attr"`
		Size     int64  `xml:"Size,attr"`
		Type     int    `xml:"Type,attr"`
		Location string `xml:"Location,attr"`
		SHA1D    string `xml:"SHA1D,attr"`
		SHA1C    string `xml:"SHA1C,attr"`
	}
	if err := xml.Unmarshal([]byte(s), &v); err != nil {
		return msn.MSNObject{}, err
	}
	return msn.MSNObject{Creator: v.Creator, Size: v.Size, Type: v.Type, Location: v.Location, SHA1D: v.SHA1D, SHA1C: v.SHA1C}, nil
}

// fakeMedia is the P2P side of the fake server: the objects contacts serve, the file offers
// they make, and what the sessions did. Guarded by its own mu.
type fakeMedia struct {
	mu       sync.Mutex
	objects  map[string][]byte // by SHA1D
	fetches  map[string]int    // fetches per SHA1D
	fetchErr error
	// gate, when set, holds every fetch until it is closed or ctx ends.
	gate     chan struct{}
	inFlight int
	maxIn    int
	pictures [][]byte // SetDisplayPicture calls
	offers   map[string]*fakeOffer
	sent     []fakeSentFile
	sendErr  error
}

type fakeSentFile struct {
	contact, name string
	data          []byte
}

func (m *fakeMedia) serve(o testObject) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.objects == nil {
		m.objects = map[string][]byte{}
	}
	m.objects[o.SHA1D] = o.Data
}

func (m *fakeMedia) fetchCount(sha string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.fetches[sha]
}

func (m *fakeMedia) totalFetches() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, k := range m.fetches {
		n += k
	}
	return n
}

func (m *fakeMedia) maxInFlight() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.maxIn
}

func (m *fakeMedia) set(edit func(m *fakeMedia)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	edit(m)
}

func (f *fakeSession) FetchObject(ctx context.Context, obj msn.MSNObject) ([]byte, error) {
	m := &f.srv.media
	m.mu.Lock()
	if m.fetches == nil {
		m.fetches = map[string]int{}
	}
	m.fetches[obj.SHA1D]++
	m.inFlight++
	m.maxIn = max(m.maxIn, m.inFlight)
	gate, ferr, data, ok := m.gate, m.fetchErr, m.objects[obj.SHA1D], m.objects[obj.SHA1D] != nil
	m.mu.Unlock()
	defer func() {
		m.mu.Lock()
		m.inFlight--
		m.mu.Unlock()
	}()
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	switch {
	case ferr != nil:
		return nil, ferr
	case !ok:
		return nil, msn.ErrTransferDeclined
	}
	return data, nil
}

func (f *fakeSession) SetDisplayPicture(_ context.Context, png []byte) error {
	f.srv.media.set(func(m *fakeMedia) { m.pictures = append(m.pictures, png) })
	return nil
}

func (f *fakeSession) SendFile(ctx context.Context, contact string, of msn.OutgoingFile) error {
	m := &f.srv.media
	m.mu.Lock()
	err := m.sendErr
	m.mu.Unlock()
	if err != nil {
		return err
	}
	data, rerr := io.ReadAll(io.LimitReader(of.Data, of.Size))
	if rerr != nil {
		return rerr
	}
	if int64(len(data)) != of.Size {
		return msn.ErrTransferCanceled
	}
	m.set(func(m *fakeMedia) { m.sent = append(m.sent, fakeSentFile{contact: contact, name: of.Name, data: data}) })
	return nil
}

func (f *fakeSession) offerOf(e *msn.FileOffered) fileOffer {
	m := &f.srv.media
	m.mu.Lock()
	defer m.mu.Unlock()
	if o := m.offers[e.SessionID]; o != nil {
		return o
	}
	return nil
}

// offerFile makes contact from offer a file of the given announced size, whose transfer sends
// data and then ends with err; it returns the offer to inspect.
func (f *fakeSession) offerFile(id, from, name string, size int64, data []byte, err error) *fakeOffer {
	o := &fakeOffer{data: data, err: err, answered: make(chan string, 1)}
	f.srv.media.set(func(m *fakeMedia) {
		if m.offers == nil {
			m.offers = map[string]*fakeOffer{}
		}
		m.offers[id] = o
	})
	f.emit(&msn.FileOffered{SessionID: id, From: from, Name: name, Size: size})
	return o
}

// fakeOffer is a contact's file offer: Accept writes data in chunks, then returns err.
type fakeOffer struct {
	data     []byte
	err      error
	gate     chan struct{} // when set, Accept waits on it before writing
	answered chan string   // "accepted" or "declined"
}

func (o *fakeOffer) Accept(ctx context.Context, w io.Writer, _ func(int64)) error {
	o.answered <- "accepted"
	if o.gate != nil {
		select {
		case <-o.gate:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for rest := o.data; len(rest) > 0; {
		n := min(len(rest), 1202)
		if _, err := w.Write(rest[:n]); err != nil {
			return err
		}
		rest = rest[n:]
	}
	return o.err
}

func (o *fakeOffer) Decline() error {
	o.answered <- "declined"
	return nil
}
