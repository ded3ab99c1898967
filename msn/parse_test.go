package msn

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"github.com/rs/zerolog"
)

func TestParseLST(t *testing.T) {
	tests := []struct {
		line string
		want lstEntry
		bad  bool
	}{
		{"LST N=bob@example.com F=Bob C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff 11 3b2c8f2e-1111-2222-3333-444455556666",
			lstEntry{Handle: "bob@example.com", Name: "Bob", GUID: "9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff", Lists: 11, Groups: []string{"3b2c8f2e-1111-2222-3333-444455556666"}}, false},
		{"LST N=carol@example.com F=Carol 8", lstEntry{Handle: "carol@example.com", Name: "Carol", Lists: 8}, false},
		{"LST N=alice@example.com F=Alice C=26496dcb-2eb6-4145-b4e4-ffe6af0dbaa4 19 ", lstEntry{Handle: "alice@example.com", Name: "Alice", GUID: "26496dcb-2eb6-4145-b4e4-ffe6af0dbaa4", Lists: 19}, false},
		{"LST N=Dave@Example.com F=D%C3%A9%20ve+x 1 g1,g2,", lstEntry{Handle: "dave@example.com", Name: "Dé ve+x", Lists: 1, Groups: []string{"g1", "g2"}}, false},
		{"LST N=erin@example.com F=Erin C=x 11 1 g1", lstEntry{Handle: "erin@example.com", Name: "Erin", GUID: "x", Lists: 11, Groups: []string{"g1"}}, false}, // MSNP12 network id
		{"LST N=tel:15551234567 F=Phone 1", lstEntry{Handle: "tel:15551234567", Name: "Phone", Lists: 1}, false},
		{"LST N=x@y F=%ZZ 255", lstEntry{Handle: "x@y", Name: "%ZZ", Lists: 31}, false},
		{"LST F=nobody 1", lstEntry{}, true},
		{"LST N=a@b F=a", lstEntry{}, true},
		{"LST N=a@b 99999", lstEntry{}, true},
	}
	for _, tt := range tests {
		toks := splitTokens([]byte(tt.line))
		got, err := parseLST(toks[1:])
		if tt.bad {
			if err == nil {
				t.Errorf("parseLST(%q) accepted", tt.line)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseLST(%q) = %+v, %v; want %+v", tt.line, got, err, tt.want)
		}
	}
}

func TestParseADGReply(t *testing.T) {
	const g = "3b2c8f2e-1111-2222-3333-444455556666"
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"wiki", []string{"Friends", g}, g},
		{"escargot", []string{"Friends", g, "0"}, g},
		{"r2m", []string{"1", "Friends", g}, g},
		{"msnp10 integer id", []string{"Friends", "5"}, "5"},
		{"r2m integer", []string{"1", "Friends", "7"}, "7"},
	}
	for _, tt := range tests {
		if got := parseADGReply(tt.args, "Friends"); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

// seedLines are protocol lines from docs/protocol.md and the captures.
var seedLines = []string{
	"VER 1 MSNP11",
	"USR 3 TWN S ct=1,rver=1,wp=FS_40SEC_0_COMPACT,lc=1,id=1",
	"XFR 3 NS 10.0.0.5:1863 0 10.0.0.1:1863",
	"SYN 5 2000-01-01T00:00:00.0-00:00 2000-01-01T00:00:00.0-00:00 2 1",
	"LSG Friends 3b2c8f2e-1111-2222-3333-444455556666",
	"LST N=bob@example.com F=Bob C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff 11 3b2c8f2e-1111-2222-3333-444455556666",
	"LST N=alice@example.com F=Alice C=26496dcb-2eb6-4145-b4e4-ffe6af0dbaa4 19 ",
	"ILN 7 NLN bob@example.com Bob 1342177280 %3Cmsnobj%2F%3E",
	"NLN NLN bob@example.com Bob 1073791020 %3Cmsnobj%2F%3E",
	"FLN bob@example.com",
	"ADC 0 RL N=alice@example.com F=Alice",
	"REM 0 RL bob@example.com",
	"ADG 9 Friends 3b2c8f2e-1111-2222-3333-444455556666 0",
	"RMG 9 1 3b2c8f2e-1111-2222-3333-444455556666",
	"REG 9 1 Friends 3b2c8f2e-1111-2222-3333-444455556666 0",
	"CHG 0 FLN",
	"CHL 0 22210219642164014968",
	"RNG 5621274722f8f5b926b2fcf5ab543ff 127.0.0.1:1864 CKI 6d70b2a42a05a2d368b9 alice@example.com Alice",
	"OUT RCT 5",
	"QNG 60",
	"911 4 extra tokens",
	"BPR bob@example.com PHH",
	"SBS 0 null",
}

var seedPayloads = []struct{ line, payload string }{
	{"UBX bob@example.com", "<Data><PSM>my msn all ducked</PSM><CurrentMedia></CurrentMedia></Data>"},
	{"MSG Hotmail Hotmail", mailMsg},
	{"GCF 6 Shields.xml", shieldsXML},
	{"NOT", "<NOTIFICATION id=\"0\"></NOTIFICATION>"},
	{"MSG Hotmail Hotmail", "MIME-Version: 1.0\r\nContent-Type: application/x-msmsgssystemmessage\r\n\r\nType: 1\r\nArg1: 5\r\n"},
}

func seedStream() []byte {
	var b bytes.Buffer
	for _, l := range seedLines {
		b.WriteString(l + "\r\n")
	}
	for _, p := range seedPayloads {
		b.WriteString(p.line + " " + itoa(len(p.payload)) + "\r\n" + p.payload)
	}
	b.WriteString("UUX 8 0\r\n")
	return b.Bytes()
}

func itoa(n int) string { return uitoa(uint32(n)) }

// FuzzReadCommand frames arbitrary bytes with the default limits and with small ones (so that
// too-long lines, fragmented lines and oversized payloads are reached with small inputs). Inputs
// are bounded as in FuzzHandleNS, to keep the fuzzer's minimisation short.
func FuzzReadCommand(f *testing.F) {
	for _, l := range seedLines {
		f.Add([]byte(l + "\r\n"))
	}
	for _, p := range seedPayloads {
		f.Add([]byte(p.line + " " + itoa(len(p.payload)) + "\r\n" + p.payload))
	}
	f.Add([]byte(strings.Join(seedLines[4:11], "\n") + "\nUUX 8 0\r\n"))
	f.Add([]byte("MSG a b -1\r\n"))
	f.Add([]byte("MSG a b 99999999999999999999\r\n"))
	f.Add([]byte("UBX a 5\r\nab"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxHandleNSInput {
			return
		}
		for _, lim := range [][2]int{{MaxLineLength, MaxPayloadSize}, {24, 64}} {
			r := NewReader(bytes.NewReader(data), ClientPayloads)
			r.SetLimits(lim[0], lim[1])
			for range 1000 {
				cmd, err := r.ReadCommand()
				if err != nil {
					break
				}
				if len(cmd.Payload) > lim[1] {
					t.Fatalf("payload of %d bytes, limit %d", len(cmd.Payload), lim[1])
				}
				if cmd.Name == "" || len(cmd.String()) > lim[0]+16 {
					t.Fatalf("line %q from a reader limited to %d bytes", cmd.String(), lim[0])
				}
				_, _ = cmd.TrID()
			}
		}
	})
}

func FuzzParseLST(f *testing.F) {
	for _, l := range seedLines {
		if strings.HasPrefix(l, "LST ") {
			f.Add(l)
		}
	}
	f.Add("LST N=a@b F=%E9%ZZ\xff 1 ,,,")
	f.Fuzz(func(t *testing.T, line string) {
		toks := splitTokens([]byte(line))
		if len(toks) == 0 {
			return
		}
		e, err := parseLST(toks[1:])
		if err == nil && e.Lists > 31 {
			t.Fatalf("list bits %d", e.Lists)
		}
	})
}

// maxHandleNSInput bounds FuzzHandleNS and FuzzReadCommand inputs. The fuzzer minimises every
// new interesting input by trying to cut each sub-range of it, quadratic in its length, so long
// inputs leave it no time to fuzz.
const maxHandleNSInput = 512

// FuzzHandleNS feeds arbitrary server commands to a client's notification handler: it must
// never panic, whatever the arguments and payloads. The client is not logged in and has no
// connection, so the handlers run without any network work (RNG and CHL are ignored in that
// state) and each input costs microseconds.
func FuzzHandleNS(f *testing.F) {
	for _, l := range seedLines {
		f.Add([]byte(l + "\r\n"))
	}
	for _, p := range seedPayloads {
		f.Add([]byte(p.line + " " + itoa(len(p.payload)) + "\r\n" + p.payload))
	}
	f.Add([]byte(strings.Join(seedLines[4:11], "\r\n") + "\r\n"))
	f.Add([]byte("UUX 8 0\r\nADC 0 FL N=bob@example.com F=Bob C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff\r\nADC 0 FL C=9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff 3b2c8f2e-1111-2222-3333-444455556666\r\nREM 0 FL 9e1a0c3d-aaaa-bbbb-cccc-ddddeeeeffff 3b2c8f2e-1111-2222-3333-444455556666\r\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > maxHandleNSInput {
			return
		}
		c, err := NewClient(Config{Server: "127.0.0.1:1", LoginURL: "http://127.0.0.1:1/", AllowInsecurePassport: true, Log: zerolog.Nop()}, testHandle, "pw", nil)
		if err != nil {
			t.Fatal(err)
		}
		r := NewReader(bytes.NewReader(data), ClientPayloads)
		for range 200 {
			cmd, err := r.ReadCommand()
			if err != nil {
				break
			}
			if cmd.Name == "XFR" {
				continue // closes the notification connection, which this client does not have
			}
			c.handleNS(cmd)
		}
		_ = c.Contacts()
		_ = c.Groups()
		_ = c.Self()
		_ = c.Close()
	})
}
