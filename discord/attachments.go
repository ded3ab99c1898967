package discord

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"time"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// The owner's attachments reach the contact as MSN file transfers (Account.SendFile), one
// after the other, after the message's text. Each is downloaded from its Discord link while it
// is sent, never held whole: the download is the transfer's source. A transfer waits for the
// contact to accept it, so it runs beside the outbox, not in it: the owner's next messages do
// not wait for the contact's click. When every attachment arrived the message gets ✅; each one
// that did not gets ❌ and a reply naming it and why (declined, cancelled, too large, failed).

const (
	// fileSendTimeout bounds one attachment's way to MSN: the contact's answer to the
	// invitation, then the transfer.
	fileSendTimeout = 15 * time.Minute
	// fileSendsPerAccount caps the transfers under way per account; more wait their turn.
	fileSendsPerAccount = 2
)

// errAttachmentTooLarge is an attachment over the bridge's file size cap (Core.MaxFileSize).
var errAttachmentTooLarge = errors.New("attachment too large for MSN")

// sendAttachments sends the attachments of an owner's message to MSN on a goroutine of their
// own (see above) and marks the message with the outcome.
func (p *portal) sendAttachments(out *outgoingMsg) {
	if len(out.files) == 0 {
		return
	}
	p.f.tracked(fileSendTimeout, func(ctx context.Context) {
		select {
		case p.fileSlots <- struct{}{}:
		case <-ctx.Done():
			return
		}
		defer func() { <-p.fileSlots }()
		ref := sentRef{channelID: out.channelID, messageID: out.messageID}
		allOK := true
		for _, a := range out.files {
			err := p.sendAttachment(ctx, out.chat, a)
			if err == nil {
				continue
			}
			allOK = false
			if ctx.Err() != nil && !errors.Is(err, context.DeadlineExceeded) {
				return // the frontend is stopping
			}
			why := p.f.attachmentFailureText(err)
			p.log.Info().Str("chat", string(out.chat)).Str("reason", why).Msg("Attachment not delivered to MSN")
			rctx, cancel := context.WithTimeout(p.f.bgCtx, 30*time.Second)
			p.reportFailure(rctx, ref, shown(a.Filename, maxShownFileName)+": "+why)
			cancel()
		}
		if allOK {
			if err := p.f.s.MessageReactionAdd(out.channelID, out.messageID, "✅", discordgo.WithContext(ctx)); err != nil {
				p.log.Warn().Err(bridge.ScrubError(err)).Str("channel_id", out.channelID).Msg("Failed to mark a delivered attachment")
			}
		}
	})
}

// sendAttachment downloads one attachment and sends it to chat as it arrives.
func (p *portal) sendAttachment(ctx context.Context, chat bridge.ChatID, a *discordgo.MessageAttachment) error {
	if a.Size < 0 || int64(a.Size) > p.f.fileToMSNLimit() {
		return errAttachmentTooLarge
	}
	body, err := p.f.download(ctx, a)
	if err != nil {
		return err
	}
	defer body.Close()
	mime := a.ContentType
	if mime == "" {
		mime = "application/octet-stream"
	}
	_, err = p.account().SendFile(ctx, FrontendName, chat, bridge.OutgoingFile{
		Name: uploadName(a.Filename),
		Size: int64(a.Size),
		MIME: mime,
		Data: body,
	})
	return err
}

// download opens an attachment's content: exactly the size Discord gave for it, or a read
// error.
func (f *Frontend) download(ctx context.Context, a *discordgo.MessageAttachment) (io.ReadCloser, error) {
	u, err := url.Parse(a.URL)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Host == "" {
		return nil, errors.New("the attachment has no usable link")
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("failed to download the attachment: %w", err)
	}
	client := f.httpClient
	if client == nil {
		client = http.DefaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("failed to download the attachment: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, fmt.Errorf("failed to download the attachment: HTTP %d", resp.StatusCode)
	}
	if resp.ContentLength >= 0 && resp.ContentLength != int64(a.Size) {
		resp.Body.Close()
		return nil, fmt.Errorf("failed to download the attachment: %d bytes offered, %d expected", resp.ContentLength, a.Size)
	}
	return &exactReader{rc: resp.Body, left: int64(a.Size)}, nil
}

// exactReader reads exactly left bytes of rc: io.EOF then, and an error when rc ends sooner or
// holds more.
type exactReader struct {
	rc   io.ReadCloser
	left int64
}

func (r *exactReader) Read(b []byte) (int, error) {
	if r.left == 0 {
		var one [1]byte
		if n, _ := io.ReadFull(r.rc, one[:]); n > 0 {
			return 0, errors.New("the attachment is larger than Discord said")
		}
		return 0, io.EOF
	}
	if int64(len(b)) > r.left {
		b = b[:r.left]
	}
	n, err := r.rc.Read(b)
	r.left -= int64(n)
	if err == io.EOF && r.left > 0 {
		return n, io.ErrUnexpectedEOF
	}
	if err == io.EOF {
		err = nil
	}
	return n, err
}

func (r *exactReader) Close() error { return r.rc.Close() }

// fileToMSNLimit is the largest attachment sent to MSN: the bridge's cap on a file, so a
// larger one is refused without being downloaded.
func (f *Frontend) fileToMSNLimit() int64 { return f.core.MaxFileSize() }

// attachmentFailureText says why an attachment did not reach the contact.
func (f *Frontend) attachmentFailureText(err error) string {
	var se *bridge.SendError
	switch {
	case errors.Is(err, errAttachmentTooLarge):
		return fmt.Sprintf("too large for MSN (%s at most)", humanSize(f.fileToMSNLimit()))
	case errors.As(err, &se):
		return fileFailureText(se.Reason, err)
	}
	return failureText(err)
}
