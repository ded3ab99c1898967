package matrix

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/status"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// LoginFlowPassword is the login flow with an MSN handle and password.
const LoginFlowPassword = "password"

const (
	loginStepCredentials = "net.msn.password"
	loginStepComplete    = "net.msn.complete"
)

// GetLoginFlows returns the password flow and the link code flow.
func (mc *MSNConnector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		Name:        "E-mail and password",
		Description: "Log in with the e-mail address and password of your MSN (Escargot) account",
		ID:          LoginFlowPassword,
	}, linkCodeFlow}
}

// CreateLogin starts a login of flowID for user. It does no I/O.
func (mc *MSNConnector) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	switch flowID {
	case LoginFlowPassword:
		return &PasswordLogin{main: mc, user: user}, nil
	case LoginFlowLinkCode:
		return &LinkCodeLogin{main: mc, user: user}, nil
	}
	return nil, fmt.Errorf("unknown login flow %q", flowID)
}

// PasswordLogin asks for the handle and password and logs in through Core.Login, which really
// logs in to MSN before anything is stored.
type PasswordLogin struct {
	main *MSNConnector
	user *bridgev2.User
}

var _ bridgev2.LoginProcessUserInput = (*PasswordLogin)(nil)

// Start returns the credentials step. The password field has type password, so bridgev2
// redacts the user's message that carries it.
func (pl *PasswordLogin) Start(ctx context.Context) (*bridgev2.LoginStep, error) {
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeUserInput,
		StepID:       loginStepCredentials,
		Instructions: "Enter the e-mail address and password of your MSN account",
		UserInputParams: &bridgev2.LoginUserInputParams{Fields: []bridgev2.LoginInputDataField{{
			Type:        bridgev2.LoginInputFieldTypeEmail,
			ID:          "email",
			Name:        "E-mail address",
			Description: "Your MSN handle, e.g. alice@hotmail.com",
			Validate: func(s string) (string, error) {
				h, err := bridge.ValidateHandle(s)
				if err != nil {
					return "", errors.New(bridge.UserMessage(err))
				}
				return h, nil
			},
		}, {
			Type: bridgev2.LoginInputFieldTypePassword,
			ID:   "password",
			Name: "Password",
		}}},
	}, nil
}

// Cancel is a no-op: nothing is held between steps.
func (pl *PasswordLogin) Cancel() {}

// SubmitUserInput logs in to MSN and, on success, creates the UserLogin. The error says why a
// login failed (wrong password, server unreachable) and nothing is stored then.
func (pl *PasswordLogin) SubmitUserInput(ctx context.Context, input map[string]string) (*bridgev2.LoginStep, error) {
	handle, err := bridge.ValidateHandle(input["email"])
	if err != nil {
		return nil, loginErrorMessage(err)
	}
	password := input["password"]
	if password == "" {
		return nil, errors.New("the password is empty")
	}
	owner := ownerOf(pl.user)
	lctx, cancel := context.WithTimeout(ctx, pl.main.Config.LoginTimeout)
	defer cancel()
	// The frontend is attached with delivery held until the UserLogin exists: HandleEvent
	// looks the login up, and would otherwise wait for the one being created here.
	acc, err := pl.main.Core.LoginWith(lctx, owner, handle, password, bridge.LoginOptions{HoldDelivery: true})
	if err != nil {
		return nil, loginErrorMessage(err)
	}
	undo := func(ctx context.Context) error { return pl.main.Core.Logout(ctx, owner, handle) }
	return pl.main.completeLogin(ctx, pl.user, acc, undo, "Logged in to MSN as "+handle)
}

// completeLogin creates and connects the UserLogin of acc for user, once the core has linked
// user to acc with delivery held, and resumes the delivery when it returns. If the UserLogin
// cannot be saved, undo (with a context that outlives ctx's cancellation) unlinks what the core
// linked, so nothing is left half stored. instructions is the text of the complete step.
func (mc *MSNConnector) completeLogin(ctx context.Context, user *bridgev2.User, acc *bridge.Account, undo func(context.Context) error, instructions string) (*bridgev2.LoginStep, error) {
	defer acc.ResumeDelivery(FrontendName)
	if mc.beforeNewLogin != nil {
		mc.beforeNewLogin()
	}
	handle := acc.Handle()
	ul, err := user.NewLogin(ctx, &database.UserLogin{
		ID:         makeUserLoginID(handle),
		RemoteName: handle,
		RemoteProfile: status.RemoteProfile{
			Email:    handle,
			Username: handle,
		},
	}, &bridgev2.NewLoginParams{DeleteOnConflict: false})
	if err != nil {
		if undo != nil {
			if lerr := undo(context.WithoutCancel(ctx)); lerr != nil {
				mc.log.Warn().Err(lerr).Str("account", handle).Msg("Failed to undo core login")
			}
		}
		return nil, fmt.Errorf("failed to save the login: %w", err)
	}
	ul.Client.Connect(ul.Log.WithContext(mc.Bridge.BackgroundCtx))
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeComplete,
		StepID:       loginStepComplete,
		Instructions: escapeMarkdown(instructions, 0) + ".\n\n" + mc.firstChatHint(acc),
		CompleteParams: &bridgev2.LoginCompleteParams{
			UserLoginID: ul.ID,
			UserLogin:   ul,
		},
	}, nil
}

// firstChatHint says, in Markdown, how to talk to a contact: the chat command (with one of the
// account's contacts as the example), the ghosts' user IDs and the contacts command that links
// them, and that a contact's message opens a room by itself.
func (mc *MSNConnector) firstChatHint(acc *bridge.Account) string {
	example := "bob@example.com"
	for _, ct := range acc.Contacts() {
		if ct.Forward {
			example = ct.Handle
			break
		}
	}
	ghost := mc.Bridge.Matrix.FormatGhostMXID(makeUserID(example))
	return "To talk to a contact, send `chat <name or e-mail>` (for example `chat " + escapeCode(example) +
		"`) and the bridge opens a room with them, or start a direct chat with their Matrix user (`" +
		escapeCode(string(ghost)) + "`). `contacts` lists your contacts with links to each. When a " +
		"contact writes to you, a room opens by itself."
}

// escapeCode makes s (a handle or user ID, validated by the bridge) safe inside a Markdown code
// span.
func escapeCode(s string) string { return strings.ReplaceAll(s, "`", "'") }

// loginErrorMessage turns a Core.Login error into one a user can act on: bridge.UserMessage,
// with this frontend's way to share an account. It never includes the password.
func loginErrorMessage(err error) error {
	msg := bridge.UserMessage(err)
	if errors.Is(err, bridge.ErrAlreadyBridged) {
		msg += ": only its owner can add another user, with a link code"
	}
	return errors.New(msg)
}
