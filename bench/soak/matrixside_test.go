package soak

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
	"go.mau.fi/util/dbutil"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/bridgeconfig"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/id"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/matrix"
	"github.com/msn-bridge/msn-bridge/matrix/matrixtest"
)

// matrixSide is the Matrix side of the soak: the real Matrix frontend (bridgev2 with the MSN
// connector) on matrixtest's fake homeserver, sharing the core's database.
//
//   - inbound (MSN → Matrix): deliveries are the m.room.message events the ghosts send into the
//     portals, counted by token (a contact's ghost: received; the account's own ghost: a message
//     the owner sent from Discord, mirrored);
//   - outbound (Matrix → MSN): the owner's room message is injected into bridgev2
//     (Bridge.QueueMatrixEvent, as the appservice does with a homeserver transaction), and its
//     outcome is the message status the bridge sends for it: success, or a failure the owner is
//     shown;
//   - faults: the homeserver goes down for a while (matrixtest.SetDown: requests wait until it
//     is back), or the frontend restarts (Stop, then a new frontend over the same database and
//     homeserver is started). Nothing is written on Matrix while either lasts.
type matrixSide struct {
	t    *testing.T
	core *bridge.Core
	db   *dbutil.Database
	log  zerolog.Logger
	fm   *matrixtest.Matrix

	mu       sync.Mutex
	fe       *matrix.Frontend // nil while the frontend is restarting
	down     bool             // the homeserver is down
	faulty   bool             // a homeserver outage or a restart is under way
	rooms    map[string]id.RoomID
	sent     map[id.EventID]*tracked
	stopped  [][2]time.Time // when the frontend was not running (restarts)
	restarts int
	outages  int
}

func newMatrixSide(t *testing.T, core *bridge.Core, db *dbutil.Database, level zerolog.Level) *matrixSide {
	log := zerolog.New(zerolog.NewTestWriter(t)).Level(level)
	return &matrixSide{t: t, core: core, db: db, log: log, fm: matrixtest.New(),
		rooms: map[string]id.RoomID{}, sent: map[id.EventID]*tracked{}}
}

// mxUserOf is the Matrix user that owns account handle.
func mxUserOf(handle string) id.UserID {
	local, _, _ := strings.Cut(handle, "@")
	return id.UserID("@" + local + ":test")
}

// start builds a new frontend over the database and the fake homeserver and starts it.
func (s *matrixSide) start(ctx context.Context) error {
	cfg := matrix.DefaultConfig()
	cfg.Presence.Rate, cfg.Presence.Burst = 1000, 1000
	fe, err := matrix.NewWithConnector(s.core, cfg, s.fm, &bridgeconfig.BridgeConfig{
		CommandPrefix: "!msn",
		// No bridge state notices in the management room: with "errors", mautrix's (v0.32.0 and v0.33.0)
		// BridgeStateQueue races (the race detector reports it) between its state loop, which
		// resets firstTransientDisconnect on the state after a TRANSIENT_DISCONNECT, and the
		// scheduleNotice goroutine it started for that disconnect, which reads it. The soak
		// reconnects MSN sessions often enough to hit it. Message statuses are unaffected.
		BridgeStatusNotices: "none",
		Permissions:         bridgeconfig.PermissionConfig{"test": &bridgeconfig.PermissionLevelUser},
	}, s.db, s.log)
	if err != nil {
		return err
	}
	if err = fe.Start(ctx); err != nil {
		return err
	}
	s.mu.Lock()
	s.fe = fe
	s.mu.Unlock()
	return nil
}

// stop stops the running frontend, if any.
func (s *matrixSide) stop(ctx context.Context) {
	s.mu.Lock()
	fe := s.fe
	s.fe = nil
	s.mu.Unlock()
	if fe != nil {
		fe.Stop(ctx)
	}
}

// restart stops the frontend and starts a new one over the same database. It reports false
// when another Matrix fault was under way (nothing was done).
func (s *matrixSide) restart() (bool, error) {
	if !s.beginFault() {
		return false, nil
	}
	defer s.endFault()
	from := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s.stop(ctx)
	err := s.start(ctx)
	s.mu.Lock()
	s.stopped = append(s.stopped, [2]time.Time{from, time.Now()})
	s.restarts++
	s.mu.Unlock()
	return true, err
}

// outage takes the homeserver down for d. It reports false when another Matrix fault was under
// way (nothing was done).
func (s *matrixSide) outage(d time.Duration) bool {
	if !s.beginFault() {
		return false
	}
	defer s.endFault()
	s.mu.Lock()
	s.down = true
	s.outages++
	s.mu.Unlock()
	s.fm.SetDown(true)
	time.Sleep(d)
	s.fm.SetDown(false)
	s.mu.Lock()
	s.down = false
	s.mu.Unlock()
	return true
}

func (s *matrixSide) beginFault() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.faulty {
		return false
	}
	s.faulty = true
	return true
}

func (s *matrixSide) endFault() {
	s.mu.Lock()
	s.faulty = false
	s.mu.Unlock()
}

// stoppedAround reports whether the frontend was not running at some time in [from, to].
func (s *matrixSide) stoppedAround(from, to time.Time) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, w := range s.stopped {
		if !w[1].Before(from) && !w[0].After(to) {
			return true
		}
	}
	return false
}

// nearestStop describes the restart of the frontend nearest to t, for the log of a loss.
func (s *matrixSide) nearestStop(t time.Time) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	best, dist := "none", time.Duration(1<<62)
	for _, w := range s.stopped {
		d := max(w[0].Sub(t), t.Sub(w[1]), 0)
		if d < dist {
			best, dist = fmt.Sprintf("%s–%s", w[0].UTC().Format("15:04:05.000"), w[1].UTC().Format("15:04:05.000")), d
		}
	}
	return best
}

// login logs handle in through the Matrix login flow of its Matrix user.
func (s *matrixSide) login(ctx context.Context, handle, password string) error {
	s.mu.Lock()
	fe := s.fe
	s.mu.Unlock()
	user, err := fe.Bridge().GetUserByMXID(ctx, mxUserOf(handle))
	if err != nil {
		return err
	}
	proc, err := fe.Connector().CreateLogin(ctx, user, matrix.LoginFlowPassword)
	if err != nil {
		return err
	}
	if _, err = proc.Start(ctx); err != nil {
		return err
	}
	step, err := proc.(bridgev2.LoginProcessUserInput).SubmitUserInput(ctx, map[string]string{"email": handle, "password": password})
	if err != nil {
		return err
	}
	if step.Type != bridgev2.LoginStepTypeComplete {
		return fmt.Errorf("login of %s ended with step %s", handle, step.StepID)
	}
	return nil
}

// findRooms records the portal room of every contact of users, from the messages their ghosts
// sent. It reports whether every contact has one.
func (s *matrixSide) findRooms(contacts map[string][]string) bool {
	for _, ev := range s.fm.Messages("") {
		if h, ok := s.fm.ParseGhostMXID(ev.Sender); ok {
			s.mu.Lock()
			if _, known := s.rooms[string(h)]; !known {
				s.rooms[string(h)] = ev.RoomID
			}
			s.mu.Unlock()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, cs := range contacts {
		for _, c := range cs {
			if s.rooms[c] == "" {
				return false
			}
		}
	}
	return true
}

// send is the owner of account writing text in contact's portal (an edit of m.editOf when set). It reports false when nothing
// could be written (the homeserver down or the frontend restarting); the outcome is the message
// status the bridge sends later (see outcome).
func (s *matrixSide) send(m *tracked, text string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fe == nil || s.down || s.rooms[m.contact] == "" {
		return false
	}
	evtID := id.EventID(fmt.Sprintf("$soak%d", s.fm.NextID()))
	s.sent[evtID] = m
	m.mu.Lock()
	m.matrixID = evtID
	m.mu.Unlock()
	content := &event.MessageEventContent{MsgType: event.MsgText, Body: text}
	if m.editOf != "" {
		content = &event.MessageEventContent{
			MsgType: event.MsgText, Body: "* " + text,
			NewContent: &event.MessageEventContent{MsgType: event.MsgText, Body: text},
			RelatesTo:  &event.RelatesTo{Type: event.RelReplace, EventID: m.editOf},
		}
	}
	s.fe.Bridge().QueueMatrixEvent(context.Background(), &event.Event{
		Type: event.EventMessage, RoomID: s.rooms[m.contact], Sender: mxUserOf(m.account), ID: evtID,
		Timestamp: time.Now().UnixMilli(),
		Content:   event.Content{Parsed: content},
	})
	return true
}

// matrixView is what Matrix shows.
type matrixView struct {
	received map[string]int  // token → messages from a contact's ghost
	mirrored map[string]int  // token → messages from the account's own ghost
	status   map[string]bool // token of an owner's message → a status came back
	failed   map[string]bool // token of an owner's message → a failure was reported
	events   int             // m.room.message events from ghosts
	statuses int
}

func (s *matrixSide) scan(users map[string]bool) matrixView {
	v := matrixView{received: map[string]int{}, mirrored: map[string]int{}, status: map[string]bool{}, failed: map[string]bool{}}
	for _, ev := range s.fm.Messages("") {
		h, ok := s.fm.ParseGhostMXID(ev.Sender)
		msg, isMsg := ev.Content.Parsed.(*event.MessageEventContent)
		if !ok || !isMsg {
			continue
		}
		v.events++
		for _, tok := range tokens(msg.Body) {
			if users[string(h)] {
				v.mirrored[tok]++
			} else {
				v.received[tok]++
			}
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, st := range s.fm.Statuses() {
		if st.Info == nil || st.Status == nil {
			continue
		}
		m := s.sent[st.Info.SourceEventID]
		if m == nil {
			continue
		}
		v.statuses++
		v.status[m.token] = true
		switch st.Status.Status {
		case event.MessageStatusSuccess, event.MessageStatusPending:
		default:
			v.failed[m.token] = true
		}
	}
	return v
}
