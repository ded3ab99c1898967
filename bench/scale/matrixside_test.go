package scale

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"gopkg.in/yaml.v3"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/networkid"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	msnbridge "github.com/msn-bridge/msn-bridge"
	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/matrix/matrixtest"
)

// matrixSide is the Matrix glue of the scale run: the real Matrix frontend (bridgev2 with the
// MSN connector, matrix.NewWithConnector) on matrixtest's in-memory homeserver, over the core's
// database. Every account has its own Matrix user, owner of the account in the core and of one
// bridgev2 UserLogin, both stored before anything starts, as after a restart of the bridge.
type matrixSide struct {
	fe *matrix.Frontend
	fm *matrixtest.Matrix

	mu    sync.Mutex
	sent  map[id.EventID]string // event id of an owner's message → its text
	rooms map[int]id.RoomID     // account index → portal room of its first contact
}

// mxUserOf is the Matrix user that owns account i.
func mxUserOf(i int) id.UserID { return id.UserID(fmt.Sprintf("@s%05d:test", i)) }

// provisionMatrix stores a bridgev2 user and UserLogin for each of the n accounts, in one
// transaction, in bridgev2's tables of db (which it creates).
func provisionMatrix(ctx context.Context, t *testing.T, db *dbutil.Database, n int) {
	t.Helper()
	bdb := database.New("", database.MetaTypes{}, db)
	if err := bdb.Upgrade(ctx); err != nil {
		t.Fatal(err)
	}
	err := db.DoTxn(ctx, nil, func(ctx context.Context) error {
		for i := range n {
			mxid := mxUserOf(i)
			if err := bdb.User.Insert(ctx, &database.User{MXID: mxid}); err != nil {
				return err
			}
			login := &database.UserLogin{UserMXID: mxid, ID: networkid.UserLoginID(userHandle(i)), RemoteName: userHandle(i)}
			if err := bdb.UserLogin.Insert(ctx, login); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("provisioning bridgev2 logins: %v", err)
	}
}

// startMatrix builds the Matrix frontend over db and core and starts it (which registers it
// with the core and connects the stored logins).
func startMatrix(ctx context.Context, t *testing.T, core *bridge.Core, db *dbutil.Database, log zerolog.Logger) *matrixSide {
	t.Helper()
	// The bridge section of the example config (the bridge's defaults: portal event buffers,
	// status notices, …), with every user of the fake homeserver allowed.
	bcfg := &readExample(t).Matrix.Bridge
	bcfg.Permissions = bridgeconfig.PermissionConfig{"test": &bridgeconfig.PermissionLevelUser}
	fm := matrixtest.New()
	fe, err := matrix.NewWithConnector(core, matrix.DefaultConfig(), fm, bcfg, db, log)
	if err != nil {
		t.Fatal(err)
	}
	if err = fe.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		fe.Stop(sctx)
	})
	return &matrixSide{fe: fe, fm: fm, sent: map[id.EventID]string{}, rooms: map[int]id.RoomID{}}
}

// room returns the portal room of account i with bot, once bridgev2 made it ("" before).
func (s *matrixSide) room(ctx context.Context, i int, bot string) id.RoomID {
	s.mu.Lock()
	r := s.rooms[i]
	s.mu.Unlock()
	if r != "" {
		return r
	}
	key := networkid.PortalKey{ID: networkid.PortalID(bot), Receiver: networkid.UserLoginID(userHandle(i))}
	// The stored row: the cached Portal is bridgev2's to change.
	portal, err := s.fe.Bridge().DB.Portal.GetByKey(ctx, key)
	if err != nil || portal == nil || portal.MXID == "" {
		return ""
	}
	s.mu.Lock()
	s.rooms[i] = portal.MXID
	s.mu.Unlock()
	return portal.MXID
}

// send is account i's owner writing text in room, injected into bridgev2 as the appservice
// does with a homeserver transaction. Its outcome is the message status the bridge sends.
func (s *matrixSide) send(i int, room id.RoomID, text string) {
	evtID := id.EventID(fmt.Sprintf("$scale%d", s.fm.NextID()))
	s.mu.Lock()
	s.sent[evtID] = text
	s.mu.Unlock()
	s.fe.Bridge().QueueMatrixEvent(context.Background(), &event.Event{
		Type: event.EventMessage, RoomID: room, Sender: mxUserOf(i), ID: evtID,
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: &event.MessageEventContent{MsgType: event.MsgText, Body: text}},
	})
}

// outcomes returns, for the owners' messages with prefix, how many the bridge reported sent
// and the texts of those it reported failed.
func (s *matrixSide) outcomes(prefix string) (ok int, failed []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.fm.Statuses() {
		if st.Info == nil || st.Status == nil {
			continue
		}
		text, mine := s.sent[st.Info.SourceEventID]
		if !mine || !strings.HasPrefix(text, prefix) {
			continue
		}
		switch st.Status.Status {
		case event.MessageStatusSuccess:
			ok++
		case event.MessageStatusPending:
		default:
			failed = append(failed, text)
		}
	}
	return ok, failed
}

// inbound returns the contacts' messages with prefix that ghosts sent into portals, and for
// each the bridge's share of its latency: from the msn client parsing the MSG (the message's
// timestamp, which the bridge gives the event) to the event reaching the homeserver.
func (s *matrixSide) inbound(prefix string) (count int, lat []time.Duration) {
	for _, ev := range s.inboundEvents(prefix) {
		lat = append(lat, ev.Recorded.Sub(ev.TS))
	}
	return len(lat), lat
}

// inboundEvents are the contacts' messages with prefix that ghosts sent into portals.
func (s *matrixSide) inboundEvents(prefix string) []*matrixtest.Event {
	var out []*matrixtest.Event
	for _, ev := range s.fm.Messages("") {
		if _, ghost := s.fm.ParseGhostMXID(ev.Sender); !ghost {
			continue
		}
		if msg, ok := ev.Content.Parsed.(*event.MessageEventContent); ok && strings.HasPrefix(msg.Body, prefix) {
			out = append(out, ev)
		}
	}
	return out
}

// badStates returns the bridge states other than connecting or connected sent for logins.
func (s *matrixSide) badStates() []string {
	var out []string
	for _, st := range s.fm.States() {
		if st.UserID == "" {
			continue
		}
		switch st.StateEvent {
		case "CONNECTING", "CONNECTED":
		default:
			out = append(out, fmt.Sprintf("%s %s %s", st.UserID, st.StateEvent, st.Error))
		}
	}
	return out
}

// dumpInbound writes, for each contact message with prefix, the unix nanoseconds it was parsed,
// its bridge share in nanoseconds and its room, one per line, for a timeline of the tail.
func (s *matrixSide) dumpInbound(t *testing.T, path, prefix string) {
	var b strings.Builder
	for _, ev := range s.inboundEvents(prefix) {
		fmt.Fprintf(&b, "%d %d %s\n", ev.TS.UnixNano(), ev.Recorded.Sub(ev.TS).Nanoseconds(), ev.RoomID)
	}
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
}

// example is what the benchmark takes from config.example.yaml, the bridge's defaults.
type example struct {
	Database dbutil.Config `yaml:"database"`
	Matrix   struct {
		Bridge bridgeconfig.BridgeConfig `yaml:"bridge"`
	} `yaml:"matrix"`
}

func readExample(t *testing.T) *example {
	t.Helper()
	var ex example
	if err := yaml.Unmarshal(msnbridge.ExampleConfig, &ex); err != nil {
		t.Fatal(err)
	}
	return &ex
}
