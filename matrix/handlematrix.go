package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/net/html"
	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/event"
	"maunium.net/go/mautrix/format"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// HandleMatrixMessage queues a Matrix message for MSN, stores its row and returns at once with
// Pending: the chat's worker (sendqueue.go) sends it in order behind the chat's earlier
// messages, waits for MSN's ACK (the core splits long texts) and sends its status. The row is
// stored without waiting for MSN so that an edit or a deletion the owner makes while MSN has
// not yet taken the message finds it (bridgev2 looks the target up before the connector sees
// the event); the worker deletes it again should nothing of the message be delivered. Only an
// edit or a deletion handled within the row's write of a message sent at once (events replayed
// together by the homeserver) can miss it, and then fails as one of an unknown message, saying
// so. What cannot be sent at all fails here. Every failure comes back as a
// bridgev2.MessageStatus with a human reason, which bridgev2 shows as the message's status and
// an error notice. Files go their own way (sendFile): they do not wait behind texts, nor texts
// behind them.
func (c *MSNClient) HandleMatrixMessage(ctx context.Context, msg *bridgev2.MatrixMessage) (*bridgev2.MatrixMessageResponse, error) {
	acc, err := c.mustAccount()
	if err != nil {
		return nil, failStatus(err, event.MessageStatusBridgeUnavailable, err.Error(), true)
	}
	if isFileMessage(msg.Content.MsgType) {
		c.stopTypingTo(chatOf(msg.Portal))
		return c.sendFile(ctx, acc, msg)
	}
	text, f, err := c.msnText(ctx, acc, msg.Content)
	if err != nil {
		return nil, err
	}
	if msg.ReplyTo != nil {
		text = c.replyQuote(ctx, acc, msg.Portal, msg.ReplyTo) + text
	}
	chat := chatOf(msg.Portal)
	c.stopTypingTo(chat)
	o := &outgoing{acc: acc, evt: msg.Event, msg: msg, chat: chat, id: acc.NewMessageID(), text: text, format: f,
		log: *zerolog.Ctx(ctx), stored: make(chan struct{})}
	switch c.push(o) {
	case pushFull:
		return nil, queueFull()
	case pushQueued:
		if o.storeFirst {
			// Sent at once: the worker stores the row as it sends, which keeps the database
			// write off the portal's loop (at 10,000 accounts the write there doubled the slow
			// contact messages in the scale benchmark, docs/reliability.md).
			break
		}
		// It waits behind the chat's earlier messages: its row is stored now, before bridgev2
		// handles the portal's next event (an edit or a deletion of this message, say).
		o.row = c.storeOutgoing(ctx, o)
		close(o.stored)
	}
	// pushRepeat: the first delivery of this event reports its outcome.
	return &bridgev2.MatrixMessageResponse{Pending: true}, nil
}

// storeOutgoing stores the row of o, a message of the owner, as bridgev2 stores a message its
// connector returns; nil if it could not (the message is sent all the same, and only an edit
// or a deletion made before MSN took it fails).
func (c *MSNClient) storeOutgoing(ctx context.Context, o *outgoing) *database.Message {
	portal := o.msg.Portal
	row := &database.Message{
		ID:         makeMessageID(o.id),
		MXID:       o.msg.Event.ID,
		Room:       portal.PortalKey,
		SenderID:   makeUserID(c.handle),
		SenderMXID: o.msg.Event.Sender,
		Timestamp:  time.Now(),
		SendTxnID:  o.msg.InputTransactionID,
	}
	if o.msg.ReplyTo != nil {
		row.ReplyTo.MessageID = o.msg.ReplyTo.ID
		row.ReplyTo.PartID = &o.msg.ReplyTo.PartID
	}
	if root := o.msg.ThreadRoot; root != nil {
		row.ThreadRoot = root.ID
		if root.ThreadRoot != "" {
			row.ThreadRoot = root.ThreadRoot
		}
	}
	br := portal.Bridge
	if br.Config.OutgoingMessageReID {
		row.MXID = br.Matrix.GenerateDeterministicEventID(portal.MXID, portal.PortalKey, row.ID, row.PartID)
	}
	// bridgev2 makes sure the sender's ghost row exists before storing a message; so do we.
	br.GetGhostByID(ctx, row.SenderID)
	if err := br.DB.Message.Insert(ctx, row); err != nil {
		o.log.Err(bridge.ScrubError(err)).Msg("Failed to save message to database")
		return nil
	}
	return row
}

// dropRow deletes the row of o, a message of which MSN got nothing, once it is stored.
func (c *MSNClient) dropRow(ctx context.Context, o *outgoing) {
	<-o.stored
	if o.row == nil {
		return
	}
	if err := o.msg.Portal.Bridge.DB.Message.Delete(ctx, o.row.RowID); err != nil {
		o.log.Err(bridge.ScrubError(err)).Msg("Failed to delete the row of a message that was not sent")
	}
	o.row = nil
}

// HandleMatrixMessageRemove carries the owner's deletion of a message. MSN cannot take a message
// back, so only one still waiting in its chat's send queue can be deleted: it is withdrawn,
// with the edits queued behind it, and the contact never gets it. A deletion of the owner's
// message once it is on its way or delivered fails, saying the contact has it; of a contact's
// message, it succeeds (on MSN too a received message is only ever deleted on one's own side).
func (c *MSNClient) HandleMatrixMessageRemove(ctx context.Context, msg *bridgev2.MatrixMessageRemove) error {
	target := msg.TargetMessage
	if target.SenderID != makeUserID(c.handle) {
		return nil
	}
	if c.withdraw(chatOf(msg.Portal), string(target.ID)) {
		zerolog.Ctx(ctx).Debug().Msg("Withdrew a deleted message before it was sent")
		return nil
	}
	return failStatus(errors.New("message already sent"), event.MessageStatusUnsupported,
		"MSN cannot take a message back: the contact has it, or it is already on its way", true)
}

// queueFull is the status of a message refused because its chat's send queue is full.
func queueFull() error {
	return failStatus(errors.New("send queue full"), event.MessageStatusGenericError,
		fmt.Sprintf("%d messages are still waiting to be sent to this chat; send it again later", maxQueuedSends), false)
}

// HandleMatrixEdit carries the owner's edit to MSN as a new message, bridge.CorrectionPrefix
// and the new text. It goes through the chat's send queue, after the messages queued before
// it, and returns once MSN took it or refused it, bridgev2 then storing the edit and sending its
// status; or after editWait, so that a slow MSN does not hold up the portal's other events:
// then a refusal comes as a failure status after bridgev2's.
func (c *MSNClient) HandleMatrixEdit(ctx context.Context, msg *bridgev2.MatrixEdit) error {
	acc, err := c.mustAccount()
	if err != nil {
		return failStatus(err, event.MessageStatusBridgeUnavailable, err.Error(), true)
	}
	text, f, err := c.msnText(ctx, acc, msg.Content)
	if err != nil {
		return err
	}
	chat := chatOf(msg.Portal)
	c.stopTypingTo(chat)
	w := &editWaiter{waiting: true, outcome: make(chan error, 1)}
	switch c.push(&outgoing{acc: acc, evt: msg.Event, chat: chat, text: bridge.CorrectionPrefix + text, format: f,
		log: *zerolog.Ctx(ctx), edit: w, target: string(msg.EditTarget.ID)}) {
	case pushFull:
		return queueFull()
	case pushBehindTarget:
		// The message it corrects is still waiting: the edit would hold the portal (and the
		// owner's deletion of that message, say) until both are sent. Its failure, if it fails,
		// comes as a status later.
		return nil
	case pushRepeat:
		// The first delivery of this event is on its way and its outcome reaches bridgev2
		// (and the status the owner sees) when it is sent, after this one's.
		return nil
	}
	// Not bounded by ctx: the send goes on regardless, and its outcome is what the owner must
	// be told.
	if ok, err := w.wait(); ok && err != nil {
		return sendErrorStatus(err)
	}
	return nil
}

// msnText renders a Matrix message's content as MSN text, or refuses it with the status the
// owner is shown.
func (c *MSNClient) msnText(ctx context.Context, acc *bridge.Account, content *event.MessageEventContent) (string, bridge.Format, error) {
	var text string
	var f bridge.Format
	switch content.MsgType {
	case event.MsgText, event.MsgNotice:
		text, f = matrixToMSN(content)
	case event.MsgEmote:
		text, f = matrixToMSN(content)
		text = "* " + c.ownName(acc) + " " + text
	case event.MsgImage, event.MsgFile, event.MsgVideo, event.MsgAudio, event.CapMsgSticker:
		// Only an edit gets here (files are sent by sendFile): its caption is carried, as the
		// caption was, in a text after the file.
		if content.FileName == "" || content.Body == content.FileName || strings.TrimSpace(content.Body) == "" {
			return "", f, failStatus(errors.New("msn cannot change a file"), event.MessageStatusUnsupported,
				"MSN cannot change a file once sent; send the new one instead", true)
		}
		text, f = matrixToMSN(content)
	default:
		return "", f, failStatus(fmt.Errorf("unsupported message type %s", content.MsgType), event.MessageStatusUnsupported,
			"MSN can only carry text messages", true)
	}
	return text, f, nil
}

// HandleMatrixMembership accepts the owner's own membership changes in a portal (joining it,
// accepting its invite): they concern Matrix alone, and succeed. A change of the owner's avatar
// in it (how an appservice learns of a profile change) makes the new avatar the account's MSN
// display picture. Any other change (inviting or
// removing someone) has no counterpart the bridge carries to MSN and fails as unsupported.
func (c *MSNClient) HandleMatrixMembership(ctx context.Context, msg *bridgev2.MatrixMembershipChange) (*bridgev2.MatrixMembershipResult, error) {
	if msg.Type.IsSelf && msg.Event.Sender == c.login.UserMXID {
		c.ownMember(msg)
		return nil, nil
	}
	return nil, bridgev2.ErrMembershipNotSupported
}

// replyQuote is the quote line (bridge.ReplyQuote) that carries a reply to target to MSN: its
// sender's name and its text, read from the homeserver as the bridge bot sees it. A text that
// cannot be read is quoted as "…", so the contact still sees what is answered and by whom.
func (c *MSNClient) replyQuote(ctx context.Context, acc *bridge.Account, portal *bridgev2.Portal, target *database.Message) string {
	who := c.ownName(acc)
	if target.SenderID != makeUserID(c.handle) {
		if h, err := parseUserID(target.SenderID); err == nil {
			who = c.nameOf(h)
		}
	}
	quoted := "…"
	if target.MXID != "" && portal.MXID != "" {
		gctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		evt, err := c.main.Bridge.Bot.GetEvent(gctx, portal.MXID, target.MXID)
		if err != nil {
			zerolog.Ctx(ctx).Debug().Err(bridge.ScrubError(err)).Stringer("event_id", target.MXID).Msg("Failed to read the message a reply quotes")
		} else if content, ok := evt.Content.Parsed.(*event.MessageEventContent); ok {
			body := event.TrimReplyFallbackText(content.Body)
			if content.Format == event.FormatHTML && content.FormattedBody != "" {
				body, _ = matrixToMSN(&event.MessageEventContent{Body: body, Format: event.FormatHTML,
					FormattedBody: event.TrimReplyFallbackHTML(content.FormattedBody)})
			}
			if strings.TrimSpace(body) != "" {
				quoted = body
			}
		}
	}
	return bridge.ReplyQuote(who, quoted)
}

func (c *MSNClient) ownName(acc *bridge.Account) string {
	if _, _, name := acc.Profile(); name != "" {
		return name
	}
	return c.handle
}

// failStatus builds a permanent-failure MessageStatus with a human message.
func failStatus(err error, reason event.MessageStatusReason, human string, certain bool) error {
	return bridgev2.WrapErrorInStatus(err).
		WithStatus(event.MessageStatusFail).
		WithErrorReason(reason).
		WithMessage(human).
		WithIsCertain(certain).
		WithSendNotice(true)
}

// sendErrorStatus maps a core send error to a MessageStatus (one that is already a status is
// kept), its message from bridge.UserMessage.
func sendErrorStatus(err error) error {
	if errors.As(err, new(bridgev2.MessageStatus)) {
		return err
	}
	human := bridge.UserMessage(err)
	var se *bridge.SendError
	switch {
	case errors.Is(err, bridge.ErrUnknownChat):
		return failStatus(err, event.MessageStatusUnsupported, human, true)
	case errors.As(err, &se):
		switch se.Reason {
		case bridge.FailureTimeout:
			return failStatus(err, event.MessageStatusNetworkError, human, false)
		case bridge.FailureNotConnected:
			return failStatus(err, event.MessageStatusBridgeUnavailable, human, true)
		case bridge.FailureInvalid, bridge.FailureTooLong:
			return failStatus(err, event.MessageStatusUnsupported, human, true)
		}
		return failStatus(err, event.MessageStatusNetworkError, human, true)
	case errors.Is(err, bridge.ErrNotConnected), errors.Is(err, bridge.ErrStopping):
		return failStatus(err, event.MessageStatusBridgeUnavailable, human, true)
	}
	return failStatus(err, event.MessageStatusNetworkError, "the message could not be sent: "+human, false)
}

// matrixToMSN converts Matrix content to MSN text and a whole-message format. MSN formats a
// message as a whole, so a style is kept only when it covers all of the text: bold, italic,
// underline, strikethrough and a single foreground colour.
func matrixToMSN(content *event.MessageEventContent) (string, bridge.Format) {
	if content.Format != event.FormatHTML || content.FormattedBody == "" {
		return content.Body, bridge.Format{}
	}
	text := plainParser.Parse(content.FormattedBody, format.NewContext(context.Background()))
	if strings.TrimSpace(text) == "" {
		text = content.Body
	}
	return text, wholeMessageFormat(content.FormattedBody)
}

// plainParser renders Matrix HTML as plain text without markdown markers (MSN carries styles in
// the message header, not in the text).
var plainParser = &format.HTMLParser{
	TabsToSpaces:           4,
	Newline:                "\n",
	HorizontalLine:         "\n---\n",
	PillConverter:          format.DefaultPillConverter,
	BoldConverter:          keepText,
	ItalicConverter:        keepText,
	StrikethroughConverter: keepText,
	UnderlineConverter:     keepText,
}

func keepText(s string, _ format.Context) string { return s }

type styleSet struct {
	bold, italic, underline, strike bool
	color                           string
}

// wholeMessageFormat returns the styles shared by every non-blank text node of an HTML body.
// Replies' fallbacks (mx-reply) are ignored.
func wholeMessageFormat(body string) bridge.Format {
	nodes, err := html.ParseFragment(strings.NewReader(body), nil)
	if err != nil {
		return bridge.Format{}
	}
	var common *styleSet
	var walk func(n *html.Node, st styleSet)
	walk = func(n *html.Node, st styleSet) {
		switch n.Type {
		case html.TextNode:
			if strings.TrimSpace(n.Data) == "" {
				return
			}
			if common == nil {
				cp := st
				common = &cp
				return
			}
			common.bold = common.bold && st.bold
			common.italic = common.italic && st.italic
			common.underline = common.underline && st.underline
			common.strike = common.strike && st.strike
			if common.color != st.color {
				common.color = ""
			}
			return
		case html.ElementNode:
			switch strings.ToLower(n.Data) {
			case "mx-reply":
				return
			case "b", "strong":
				st.bold = true
			case "i", "em":
				st.italic = true
			case "u", "ins":
				st.underline = true
			case "del", "s", "strike":
				st.strike = true
			case "font", "span":
				for _, a := range n.Attr {
					if k := strings.ToLower(a.Key); k == "color" || k == "data-mx-color" {
						if c := strings.TrimPrefix(strings.ToLower(strings.TrimSpace(a.Val)), "#"); isHexColor(c) {
							st.color = c
						}
					}
				}
			}
		}
		for ch := n.FirstChild; ch != nil; ch = ch.NextSibling {
			walk(ch, st)
		}
	}
	for _, n := range nodes {
		walk(n, styleSet{})
	}
	if common == nil {
		return bridge.Format{}
	}
	return bridge.Format{Bold: common.bold, Italic: common.italic, Underline: common.underline,
		Strikethrough: common.strike, Color: common.color}
}

// typingInterval is how often MSN typing notifications are repeated while the Matrix user
// types (MSN clients expire them after about 6 s); typingMax bounds one burst of them when no
// "stopped typing" arrives.
const (
	typingInterval = 4 * time.Second
	typingMax      = 30 * time.Second
)

// typingLoop repeats MSN typing notifications for one chat.
type typingLoop struct {
	once   sync.Once
	cancel context.CancelFunc
}

func (l *typingLoop) stop() { l.once.Do(l.cancel) }

// HandleMatrixTyping starts or stops MSN typing notifications for the chat. Notifications are
// throttled to one per typingInterval and stop after typingMax, a message, or "stopped
// typing". Errors are ignored: typing is best effort.
func (c *MSNClient) HandleMatrixTyping(ctx context.Context, msg *bridgev2.MatrixTyping) error {
	chat := chatOf(msg.Portal)
	if !msg.IsTyping {
		c.stopTypingTo(chat)
		return nil
	}
	acc, err := c.mustAccount()
	if err != nil {
		return err
	}
	c.mu.Lock()
	if _, running := c.typingOut[chat]; running {
		c.mu.Unlock()
		return nil
	}
	lctx, cancel := context.WithTimeout(c.main.Bridge.BackgroundCtx, typingMax)
	loop := &typingLoop{cancel: cancel}
	c.typingOut[chat] = loop
	c.mu.Unlock()
	go func() {
		defer func() {
			c.mu.Lock()
			if c.typingOut[chat] == loop {
				delete(c.typingOut, chat)
			}
			c.mu.Unlock()
			loop.stop()
		}()
		tick := time.NewTicker(typingInterval)
		defer tick.Stop()
		for {
			sctx, scancel := context.WithTimeout(lctx, typingInterval)
			err := acc.SendTyping(sctx, chat)
			scancel()
			if err != nil {
				c.log.Debug().Err(bridge.ScrubError(err)).Str("chat", string(chat)).Msg("Failed to send typing notification")
				return
			}
			select {
			case <-lctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	return nil
}

func (c *MSNClient) stopTypingTo(chat bridge.ChatID) {
	c.mu.Lock()
	loop := c.typingOut[chat]
	delete(c.typingOut, chat)
	c.mu.Unlock()
	if loop != nil {
		loop.stop()
	}
}
