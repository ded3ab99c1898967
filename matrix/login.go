package matrix

import (
	"context"
	"errors"
	"fmt"

	"maunium.net/go/mautrix/bridgev2"
	"maunium.net/go/mautrix/bridgev2/database"
	"maunium.net/go/mautrix/bridgev2/status"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// LoginFlowPassword is the only login flow: MSN handle and password.
const LoginFlowPassword = "password"

const (
	loginStepCredentials = "net.msn.password"
	loginStepComplete    = "net.msn.complete"
)

// GetLoginFlows returns the password flow.
func (mc *MSNConnector) GetLoginFlows() []bridgev2.LoginFlow {
	return []bridgev2.LoginFlow{{
		Name:        "E-mail and password",
		Description: "Log in with the e-mail address and password of your MSN (Escargot) account",
		ID:          LoginFlowPassword,
	}}
}

// CreateLogin starts a password login for user. It does no I/O.
func (mc *MSNConnector) CreateLogin(ctx context.Context, user *bridgev2.User, flowID string) (bridgev2.LoginProcess, error) {
	if flowID != LoginFlowPassword {
		return nil, fmt.Errorf("unknown login flow %q", flowID)
	}
	return &PasswordLogin{main: mc, user: user}, nil
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
	defer acc.ResumeDelivery(FrontendName)
	if pl.main.beforeNewLogin != nil {
		pl.main.beforeNewLogin()
	}
	ul, err := pl.user.NewLogin(ctx, &database.UserLogin{
		ID:         makeUserLoginID(handle),
		RemoteName: handle,
		RemoteProfile: status.RemoteProfile{
			Email:    handle,
			Username: handle,
		},
	}, &bridgev2.NewLoginParams{DeleteOnConflict: false})
	if err != nil {
		// Undo the core's link so nothing is left half stored.
		if lerr := pl.main.Core.Logout(context.WithoutCancel(ctx), owner, handle); lerr != nil {
			pl.main.log.Warn().Err(lerr).Str("account", handle).Msg("Failed to undo core login")
		}
		return nil, fmt.Errorf("failed to save the login: %w", err)
	}
	ul.Client.Connect(ul.Log.WithContext(pl.main.Bridge.BackgroundCtx))
	return &bridgev2.LoginStep{
		Type:         bridgev2.LoginStepTypeComplete,
		StepID:       loginStepComplete,
		Instructions: fmt.Sprintf("Logged in to MSN as %s", handle),
		CompleteParams: &bridgev2.LoginCompleteParams{
			UserLoginID: ul.ID,
			UserLogin:   ul,
		},
	}, nil
}

// loginErrorMessage turns a Core.Login error into one a user can act on: bridge.UserMessage,
// with this frontend's way to share an account. It never includes the password.
func loginErrorMessage(err error) error {
	msg := bridge.UserMessage(err)
	if errors.Is(err, bridge.ErrAlreadyBridged) {
		msg += ": only its owner can add another user, with a link code"
	}
	return errors.New(msg)
}
