package matrix

import (
	"context"
	"errors"
	"slices"
	"strings"

	"maunium.net/go/mautrix/bridgev2"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// LoginFlowLinkCode is the login flow that attaches the Matrix user to an MSN account already
// bridged for its owner elsewhere (e.g. signed in from Discord), with a one-time code the owner
// got there (`/msn link-code`). It never logs in to MSN: it joins the running session.
const LoginFlowLinkCode = "link-code"

const loginStepLinkCode = "net.msn.link_code"

// maxLinkCodeInput bounds what the code field accepts; a real code is 14 characters.
const maxLinkCodeInput = 64

var linkCodeFlow = bridgev2.LoginFlow{
	Name:        "Link code",
	Description: "Mirror here an MSN account already bridged elsewhere (e.g. Discord), with a one-time code from its `/msn link-code`",
	ID:          LoginFlowLinkCode,
}

// LinkCodeLogin asks for a link code and redeems it through Core.RedeemLinkCodeWith. Attempts
// count against the user's login limit, as password logins do.
type LinkCodeLogin struct {
	main *MSNConnector
	user *bridgev2.User
}

var _ bridgev2.LoginProcessUserInput = (*LinkCodeLogin)(nil)

// Start returns the code step. The field has type token, so bridgev2 redacts the user's message
// that carries the code.
func (ll *LinkCodeLogin) Start(ctx context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeUserInput,
		StepID:       loginStepLinkCode,
		Instructions: "Enter the one-time code that `/msn link-code` gave you in Discord",
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type:        bridgev2.LoginInputFieldTypeToken,
			ID:          "code",
			Name:        "Link code",
			Description: "Like ABCD-EFGH-JKMN; it works once and expires after a few minutes",
			Validate:    validateLinkCode,
		}}},
	}, nil
}

func validateLinkCode(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > maxLinkCodeInput {
		return "", errors.New("that is not a link code")
	}
	return s, nil
}

// Cancel is a no-op: nothing is held between steps.
func (ll *LinkCodeLogin) Cancel() {}

// SubmitUserInput redeems the code and, on success, creates the UserLogin of the code's account
// as the password flow does. A wrong, used or expired code, or too many attempts, fail with an
// error that says so, and store nothing.
func (ll *LinkCodeLogin) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	code, err := validateLinkCode(input["code"])
	if err != nil {
		return nil, err
	}
	owner := ownerOf(ll.user)
	before := ll.main.Core.AccountsFor(owner)
	lctx, cancel := context.WithTimeout(ctx, ll.main.Config.LoginTimeout)
	defer cancel()
	// Held delivery, as in the password flow: HandleEvent needs the UserLogin made below.
	acc, err := ll.main.Core.RedeemLinkCodeWith(lctx, code, owner, bridge.LoginOptions{HoldDelivery: true})
	if err != nil {
		return nil, linkCodeErrorMessage(err)
	}
	handle := acc.Handle()
	var undo func(context.Context) error
	if !slices.Contains(before, acc) {
		undo = func(ctx context.Context) error { return ll.main.Core.Logout(ctx, owner, handle) }
	}
	return ll.main.completeLogin(ctx, ll.user, acc, undo, "Linked to MSN as "+handle+": its running session is now mirrored here too")
}

// linkCodeErrorMessage turns a Core.RedeemLinkCodeWith error into one a user can act on.
func linkCodeErrorMessage(err error) error {
	if errors.Is(err, bridge.ErrInvalidLinkCode) {
		return errors.New("that link code is unknown, used or expired: get a new one with `/msn link-code` in Discord")
	}
	return loginErrorMessage(err)
}
