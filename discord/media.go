package discord

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
	"github.com/msn-bridge/msn-bridge/internal/text"
)

// Media from MSN: contacts' files, winks and custom emoticons.
//
// A file is posted through the chat's webhook under the sender's name, as an attachment with
// its own name, when it fits Discord's upload limit; otherwise a line names it and its size.
// A wink is a bot line like a nudge, with the wink's thumbnail attached when MSN gave one.
// Custom emoticons stay as their shortcuts in the text (a webhook cannot inline an image), and
// the images of those used are attached to the message that uses them, each once, named after
// its shortcut, so the picture is beside the words it stands for.

const (
	// maxWinkImage and maxEmoticonImage cap the images shown for a wink and for each custom
	// emoticon: MSN's are a few kilobytes; larger ones are shown as text only.
	maxWinkImage     = 1 << 20
	maxEmoticonImage = 256 << 10
	// maxFilesPerPost is Discord's cap on attachments per message.
	maxFilesPerPost = 10
	// maxShownFileName caps a file's name in a line.
	maxShownFileName = 120
)

// errFileTooLarge is returned by readUpTo for content over its limit.
var errFileTooLarge = errors.New("file over the size limit")

// uploadLimitFor is Discord's upload limit per file in a guild of the given boost tier.
func uploadLimitFor(tier discordgo.PremiumTier) int64 {
	switch tier {
	case discordgo.PremiumTier2:
		return 50 << 20
	case discordgo.PremiumTier3:
		return 100 << 20
	}
	return 10 << 20
}

// uploadLimit returns the guild's upload limit per file, as last read at start.
func (f *Frontend) uploadLimit() int64 {
	n := f.uploadMax.Load()
	if n <= 0 {
		n = uploadLimitFor(discordgo.PremiumTierNone)
	}
	if f.maxUpload > 0 {
		n = min(n, f.maxUpload)
	}
	return n
}

// senderUsername is the webhook username a message, file or wink of sender is posted under:
// the contact's friendly name (or handle), or the owner's with where it was sent from.
func (p *portal) senderUsername(sender, senderName string, fromMe bool, origin string) string {
	name := senderName
	if name == "" {
		if c, ok := p.account().Contact(sender); ok {
			name = c.Name
		}
	}
	username := sanitizeUsername(bridge.CleanLine(name, bridge.MaxShownName), bridge.CleanLine(sender, bridge.MaxShownName))
	if fromMe {
		suffix := " (you"
		if origin != "" {
			suffix += ", via " + origin
		}
		suffix += ")"
		username = text.Truncate(username, 80-len([]rune(suffix))) + suffix
	}
	return username
}

// senderLabel names who sent something in a line: the contact (see contactLabel), or "you".
func (p *portal) senderLabel(sender, senderName string, fromMe bool, origin string) string {
	if fromMe {
		if origin != "" && origin != FrontendName {
			return "You (via " + shown(origin, bridge.MaxShownName) + ")"
		}
		return "You"
	}
	c, ok := p.account().Contact(sender)
	if !ok {
		c = bridge.Contact{Handle: sender, Name: senderName}
	}
	return contactLabel(c)
}

// fileLabel shows a file's name and size in a line: **name** (1.2 MiB), escaped.
func fileLabel(name string, size int64) string {
	shownName := shown(name, maxShownFileName)
	if shownName == "" {
		shownName = "unnamed file"
	}
	return "**" + shownName + "** (" + humanSize(size) + ")"
}

// humanSize renders a byte count for people: bytes, KiB, MiB or GiB with one decimal.
func humanSize(n int64) string {
	switch {
	case n < 0:
		return "size unknown"
	case n < 1<<10:
		return fmt.Sprintf("%d bytes", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

// uploadName is a file name Discord takes as an attachment's: no path, no control or
// separator characters, at most 100 runes with its extension kept; "file" when nothing is left.
func uploadName(name string) string {
	name = bridge.CleanLine(name, 1000)
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || strings.ContainsRune(`<>:"|?*`, r) {
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	name = strings.Trim(name, ". ")
	if name == "" {
		return "file"
	}
	if r := []rune(name); len(r) > 100 {
		ext := ""
		if i := strings.LastIndexByte(name, '.'); i > 0 && len([]rune(name[i:])) <= 10 {
			ext = name[i:]
		}
		name = string(r[:100-len([]rune(ext))]) + ext
	}
	return name
}

// readUpTo reads what open gives, failing with errFileTooLarge past limit bytes.
func readUpTo(open func() (io.ReadCloser, error), limit int64) ([]byte, error) {
	if open == nil {
		return nil, errors.New("no content")
	}
	rc, err := open()
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, errFileTooLarge
	}
	return data, nil
}

// imageType returns the type of an image Discord shows inline (PNG, JPEG, GIF or WebP) as its
// content says, whatever a contact claimed, or "".
func imageType(data []byte) string {
	if len(data) >= 12 && bytes.Equal(data[:4], []byte("RIFF")) && bytes.Equal(data[8:12], []byte("WEBP")) {
		return "image/webp"
	}
	switch t := http.DetectContentType(data); t {
	case "image/png", "image/jpeg", "image/gif":
		return t
	}
	return ""
}

// imageExt is the file extension of an imageType.
func imageExt(mime string) string {
	switch mime {
	case "image/jpeg":
		return ".jpg"
	case "image/gif":
		return ".gif"
	case "image/webp":
		return ".webp"
	}
	return ".png"
}

// rewind puts every file's reader back at its start, so a request can be sent again.
func rewind(files []*discordgo.File) {
	for _, f := range files {
		if s, ok := f.Reader.(io.Seeker); ok {
			_, _ = s.Seek(0, io.SeekStart)
		}
	}
}

// isTooLarge reports Discord's 40005 (request entity too large).
func isTooLarge(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && (re.Message != nil && re.Message.Code == discordgo.ErrCodeRequestEntityTooLarge ||
		re.Response != nil && re.Response.StatusCode == http.StatusRequestEntityTooLarge)
}

// showFile posts a file of a chat through its webhook, as an attachment under the sender's
// name; a file over the guild's upload limit, or one that cannot be read, becomes a line that
// names it and says why.
func (p *portal) showFile(ctx context.Context, e bridge.File) error {
	if e.Chat.IsGroup() && !e.FromMe {
		p.noteMember(e.Chat, e.Sender)
	}
	who := p.senderLabel(e.Sender, e.SenderName, e.FromMe, e.Origin)
	limit := p.f.uploadLimit()
	tooLarge := fmt.Sprintf("📎 %s sent %s: too large to show here (Discord takes files of up to %s in this server).",
		who, fileLabel(e.Name, e.Size), humanSize(limit))
	if e.Size > limit {
		return p.fileLine(ctx, e.Chat, tooLarge)
	}
	data, err := readUpTo(e.Open, limit)
	switch {
	case errors.Is(err, errFileTooLarge):
		return p.fileLine(ctx, e.Chat, tooLarge)
	case err != nil:
		p.log.Warn().Err(bridge.ScrubError(err)).Str("chat", string(e.Chat)).Msg("Failed to read an MSN file")
		return p.fileLine(ctx, e.Chat, fmt.Sprintf("⚠️ %s sent %s, but it could not be read to show it here.", who, fileLabel(e.Name, e.Size)))
	}
	mime := e.MIME
	if mime == "" {
		mime = "application/octet-stream"
	}
	_, err = p.executeAs(ctx, e.Chat, &discordgo.WebhookParams{
		Username: p.senderUsername(e.Sender, e.SenderName, e.FromMe, e.Origin),
		Files:    []*discordgo.File{{Name: uploadName(e.Name), ContentType: mime, Reader: bytes.NewReader(data)}},
	}, e.FromMe)
	switch {
	case err == nil:
		return nil
	case isTooLarge(err):
		return p.fileLine(ctx, e.Chat, tooLarge)
	case ctx.Err() != nil || forbidden(err):
		return fmt.Errorf("failed to show an msn file: %w", err)
	}
	line := fmt.Sprintf("⚠️ %s sent %s, but it could not be posted here (%s).", who, fileLabel(e.Name, e.Size),
		shown(bridge.ScrubError(err).Error(), maxShownError))
	if lerr := p.fileLine(ctx, e.Chat, line); lerr != nil {
		return fmt.Errorf("failed to show an msn file: %w", err)
	}
	return nil
}

// fileLine posts a bot line about a file in the chat's channel.
func (p *portal) fileLine(ctx context.Context, chat bridge.ChatID, line string) error {
	if _, err := p.botSend(ctx, chat, &discordgo.MessageSend{Content: line}); err != nil {
		return fmt.Errorf("failed to post a line about a file: %w", err)
	}
	return nil
}

// showFileFailed tells the owner, in the chat's channel, of a contact's file that did not arrive.
func (p *portal) showFileFailed(ctx context.Context, e bridge.FileFailed) error {
	who := p.senderLabel(e.Sender, e.SenderName, false, "")
	line := fmt.Sprintf("⚠️ %s sent %s, but it did not arrive: %s.", who, fileLabel(e.Name, e.Size), fileFailureText(e.Reason, e.Err))
	return p.fileLine(ctx, e.Chat, line)
}

// fileFailureText says why a file was not carried, for the owner: the reason's own words for
// those of files, the cause (cleaned and escaped) otherwise.
func fileFailureText(reason bridge.SendFailure, err error) string {
	switch reason {
	case bridge.FailureDeclined:
		return "the contact declined it"
	case bridge.FailureCanceled:
		return "the transfer was cancelled"
	case bridge.FailureTooLarge:
		return "it is larger than the bridge takes"
	case bridge.FailureTimeout:
		return "the transfer stalled"
	case bridge.FailureContactOffline:
		return "the contact is offline"
	case bridge.FailureNotConnected:
		return "the MSN account is not connected"
	}
	if err != nil {
		return shown(bridge.UserMessage(err), maxShownError)
	}
	return shown(reason.Describe(), maxShownError)
}

// showWink posts a wink as an italic bot line naming it, with its thumbnail attached when MSN
// gave one that is an image of a sensible size.
func (p *portal) showWink(ctx context.Context, w bridge.Wink) error {
	who := w.SenderName
	if c, ok := p.account().Contact(w.Sender); ok && c.Name != "" {
		who = c.Name
	}
	if bridge.CleanLine(who, bridge.MaxShownName) == "" {
		who = w.Sender
	}
	line := "*😉 " + shown(who, bridge.MaxShownName) + " sent a wink"
	if name := shown(w.Name, bridge.MaxShownName); name != "" {
		line += ": " + name
	}
	line += "*"
	msg := &discordgo.MessageSend{Content: line}
	if mime := imageType(w.Image); mime != "" && len(w.Image) <= maxWinkImage {
		msg.Files = []*discordgo.File{{Name: "wink" + imageExt(mime), ContentType: mime, Reader: bytes.NewReader(w.Image)}}
	}
	_, err := p.botSend(ctx, w.Chat, msg)
	if err != nil && len(msg.Files) > 0 && isTooLarge(err) {
		msg.Files = nil // the line alone still says it
		_, err = p.botSend(ctx, w.Chat, msg)
	}
	if err != nil {
		return fmt.Errorf("failed to show a wink: %w", err)
	}
	return nil
}

// emoticonFiles returns the images of the custom emoticons text uses, as attachments named
// after their shortcuts: each image once, only real images of a sensible size, at most
// Discord's attachments per message.
func emoticonFiles(text string, emos []bridge.Emoticon) []*discordgo.File {
	var files []*discordgo.File
	seen := map[string]bool{}
	names := map[string]bool{}
	for _, e := range emos {
		if len(files) == maxFilesPerPost {
			break
		}
		key := e.Avatar
		if key == "" {
			key = string(e.Data)
		}
		mime := imageType(e.Data)
		if e.Shortcut == "" || !strings.Contains(text, e.Shortcut) || seen[key] || mime == "" || len(e.Data) > maxEmoticonImage {
			continue
		}
		seen[key] = true
		base := emoticonName(e.Shortcut)
		name := base + imageExt(mime)
		for i := 2; names[name]; i++ {
			name = fmt.Sprintf("%s-%d%s", base, i, imageExt(mime))
		}
		names[name] = true
		files = append(files, &discordgo.File{Name: name, ContentType: mime, Reader: bytes.NewReader(e.Data)})
	}
	return files
}

// emoticonName makes a file name of an emoticon's shortcut: its letters, digits, "-" and "_"
// (not at the ends), or "emoticon" when that leaves nothing.
func emoticonName(shortcut string) string {
	var b strings.Builder
	for _, r := range shortcut {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			b.WriteRune(r)
		}
		if b.Len() >= 32 {
			break
		}
	}
	name := strings.Trim(b.String(), "-_")
	if name == "" {
		return "emoticon"
	}
	return "emoticon-" + name
}
