package discord

import (
	"context"
	"fmt"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// linkCode answers /msn link-code, already deferred, with a one-time code with which the owner
// mirrors acc in Matrix too. The answer is ephemeral like every other, so only the owner sees
// the code; the core refuses anyone who does not own acc.
func (f *Frontend) linkCode(ctx, actx context.Context, i *discordgo.Interaction, acc *bridge.Account, owner bridge.FrontendUser) {
	code, expires, err := f.core.IssueLinkCode(actx, acc.Handle(), owner)
	if err != nil {
		f.log.Warn().Err(bridge.ScrubError(err)).Str("user_id", owner.UserID).Msg("Failed to issue a link code")
		f.finish(ctx, i, "❌ Could not create a link code: "+failureText(err))
		return
	}
	f.log.Info().Str("user_id", owner.UserID).Str("account", acc.Handle()).Msg("Link code issued")
	f.finish(ctx, i, fmt.Sprintf("🔑 Link code for **%s**: `%s`\n"+
		"To mirror this account in Matrix too, send `login link-code %s` to the bridge bot there "+
		"before <t:%d:t> (%s UTC). It works once; keep it to yourself.",
		acc.Handle(), code, code, expires.Unix(), expires.UTC().Format("15:04")))
}
