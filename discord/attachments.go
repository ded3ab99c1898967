package discord

import (
	"net/url"
	"strconv"
	"time"

	"github.com/bwmarrin/discordgo"
)

// attachmentLine is how an attachment of the owner's message reaches MSN: its name and link.
// Discord's CDN links are signed and stop working when their ex parameter passes (about a day
// after they are handed out), and Discord offers no lasting form that someone outside it can
// open, so the line says until when the link works.
func attachmentLine(a *discordgo.MessageAttachment) string {
	line := "📎 " + a.Filename + ": " + a.URL
	if until, ok := linkExpiry(a.URL); ok {
		line += " (link valid until " + until.UTC().Format("2006-01-02 15:04") + " UTC)"
	}
	return line
}

// linkExpiry reads the ex parameter of a Discord CDN link: when it stops working.
func linkExpiry(link string) (time.Time, bool) {
	u, err := url.Parse(link)
	if err != nil {
		return time.Time{}, false
	}
	ex, err := strconv.ParseInt(u.Query().Get("ex"), 16, 64)
	if err != nil || ex <= 0 {
		return time.Time{}, false
	}
	return time.Unix(ex, 0), true
}
