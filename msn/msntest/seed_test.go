package msntest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/msn-bridge/msn-bridge/msn"
)

// seedLine is one line of the msn package's copy of the seed transcript
// (../testdata/seed-transcript.txt): a client ('C') or server ('S') command, the payload line
// that follows it, and whether it opens the connection made after XFR NS.
type seedLine struct {
	lineNo    int
	from      byte
	text      string
	payload   string
	reconnect bool
}

// loadSeedLines parses the transcript: "C: " and "S: " lines, a payload line after a payload
// command, indented notes ("(client reconnects …)" marks the new connection) and '#' comments.
func loadSeedLines(t *testing.T, path string) []seedLine {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var lines []seedLine
	reconnect := false
	for i, l := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
		switch {
		case strings.HasPrefix(l, "#"):
		case strings.HasPrefix(l, "C: "), strings.HasPrefix(l, "S: "):
			lines = append(lines, seedLine{lineNo: i + 1, from: l[0], text: l[3:], reconnect: reconnect})
			reconnect = false
		case strings.HasPrefix(l, " "):
			reconnect = reconnect || strings.Contains(l, "reconnects")
		default:
			if len(lines) == 0 {
				t.Fatalf("%s:%d: payload line without a command", path, i+1)
			}
			lines[len(lines)-1].payload = l
		}
	}
	return lines
}

// seedProfileFields are the login profile's fields the transcript names, in its order.
var seedProfileFields = []string{"LoginTime", "EmailEnabled", "MemberIdHigh", "MemberIdLow",
	"lang_preference", "PreferredEmail", "country", "Flags", "sid", "kv", "MSPAuth", "ClientIP",
	"ClientPort", "ABCHMigrated"}

// TestSeedTranscriptReplies plays the client's lines of the seed transcript, as the msn package
// keeps it, to the server under SeedTranscriptOptions (dispatch, then the NS it names, with a
// real Passport 1.4 login in between) and checks that every server line of the transcript comes
// back in order with its shape: the command, the TrID, every token, and the payload's length
// and bytes. What may differ is what the transcript cannot fix: the addresses in XFR (the
// server's own), the ticket, the contact id of the ADC reply (any GUID), and the profile's
// values (its content type and named fields must be there, in the transcript's order, with
// ABCHMigrated: 1).
func TestSeedTranscriptReplies(t *testing.T) {
	s := newServer(t, SeedTranscriptOptions())
	lines := loadSeedLines(t, "../testdata/seed-transcript.txt")
	fill := strings.NewReplacer("10.0.0.5:1863", s.NSAddr(), "10.0.0.1:1863", s.DispatchAddr())
	c := dialRaw(t, s.DispatchAddr())
	challenge, ticket := "", ""
	replies := 0
	for _, l := range lines {
		where := "transcript line " + strconv.Itoa(l.lineNo) + " (" + string(l.from) + ": " + l.text + ")"
		if l.reconnect {
			if got := c.expectClosed(); len(got) != 0 {
				t.Fatalf("%s: the dispatch server sent %q after XFR instead of closing", where, got[0].String())
			}
			c = dialRaw(t, s.NSAddr())
		}
		if l.from == 'C' {
			line := l.text
			if strings.Contains(line, "<the from-PP ticket>") {
				var status int
				if ticket, status = passport(t, s, "example@hotmail.com", "password", challenge); ticket == "" {
					t.Fatalf("%s: Passport answered HTTP %d", where, status)
				}
				line = strings.Replace(line, "<the from-PP ticket>", ticket, 1)
			}
			if l.payload != "" {
				c.write([]byte(line + "\r\n" + l.payload))
			} else {
				c.send(line)
			}
			continue
		}
		cmd, err := c.tryRead()
		if err != nil {
			t.Fatalf("%s: read: %v", where, err)
		}
		replies++
		want := strings.Fields(fill.Replace(l.text))
		got := append([]string{cmd.Name}, cmd.Args...)
		if cmd.Payload != nil {
			got = append(got, strconv.Itoa(len(cmd.Payload)))
		}
		if len(got) != len(want) {
			t.Fatalf("%s: got %q, %d tokens, want %d", where, cmd.String(), len(got), len(want))
		}
		profile := cmd.Name == "MSG" && cmd.Arg(0) == "Hotmail"
		for i := range want {
			switch {
			case got[i] == want[i]:
			case strings.HasPrefix(want[i], "C=") && strings.HasPrefix(got[i], "C=") && isGUID(got[i][2:]):
			case profile && i == len(want)-1:
			default:
				t.Fatalf("%s: got %q, token %d is %q, want %q", where, cmd.String(), i, got[i], want[i])
			}
		}
		switch {
		case cmd.Name == "USR" && cmd.Arg(2) == "S":
			challenge = cmd.Arg(3)
		case profile:
			seedCheckProfile(t, where, cmd.Payload)
		case l.payload != "" && string(cmd.Payload) != l.payload:
			t.Fatalf("%s: payload %q, want %q", where, cmd.Payload, l.payload)
		}
	}
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("after the transcript's OUT the server sent %q instead of closing", got[0].String())
	}
	if replies != 18 {
		t.Fatalf("%d server lines checked, the transcript has 18", replies)
	}
	if got := s.Lists("example@hotmail.com", "tel:15551111222"); got != FL|AL {
		t.Fatalf("tel: contact on lists %d, want FL|AL", got)
	}
}

// seedCheckProfile checks the login profile's shape: a text/x-msmsgsprofile message with the
// fields the transcript names, in its order, and ABCHMigrated: 1.
func seedCheckProfile(t *testing.T, where string, p []byte) {
	t.Helper()
	m, err := msn.ParseMIME(p)
	if err != nil {
		t.Fatalf("%s: profile: %v", where, err)
	}
	if ct := m.ContentType(); ct != "text/x-msmsgsprofile" {
		t.Fatalf("%s: profile content type %q", where, ct)
	}
	next := 0
	for _, h := range m.Headers {
		if next < len(seedProfileFields) && h.Name == seedProfileFields[next] {
			next++
		}
	}
	if next != len(seedProfileFields) {
		t.Fatalf("%s: profile lacks %s (or has it out of order): %q", where, seedProfileFields[next], p)
	}
	if v := m.Get("ABCHMigrated"); v != "1" {
		t.Fatalf("%s: ABCHMigrated: %q, want 1", where, v)
	}
}
