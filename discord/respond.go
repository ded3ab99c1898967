package discord

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// respond posts the initial response to an interaction outside discordgo's rate limiter.
// Discord exempts interaction callbacks from the global rate limit, but discordgo holds every
// request, callbacks included, behind a global 429, which would keep the answer past the 3 s
// Discord allows. A failure is a *discordgo.RESTError, as discordgo returns, or a network error
// without the URL (it carries the interaction token).
func (f *Frontend) respond(ctx context.Context, i *discordgo.Interaction, resp *discordgo.InteractionResponse) error {
	body, err := json.Marshal(resp)
	if err != nil {
		return fmt.Errorf("failed to encode the interaction response: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, discordgo.EndpointInteractionResponse(i.ID, i.Token),
		bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("failed to build the interaction response: %w", bridge.ScrubError(err))
	}
	req.Header.Set("Authorization", f.s.Token)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", f.s.UserAgent)
	res, err := f.s.Client.Do(req)
	if err != nil {
		return fmt.Errorf("failed to send the interaction response: %w", bridge.ScrubError(err))
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	switch res.StatusCode {
	case http.StatusOK, http.StatusCreated, http.StatusNoContent:
		return nil
	}
	re := &discordgo.RESTError{Request: req, Response: res, ResponseBody: b}
	var msg discordgo.APIErrorMessage
	if json.Unmarshal(b, &msg) == nil {
		re.Message = &msg
	}
	return re
}
