package msn

import (
	"context"
	"fmt"
)

// VerifyCredentials checks handle's password without logging in. It runs the login up to the
// Passport ticket (VER, CVR and USR TWN I on cfg.Server, following its redirects, then the
// Passport 1.4 login) and hangs up before presenting the ticket with USR TWN S. The server
// ends an account's other session (OUT OTH) only when a ticket is presented, so a session of
// handle that is online elsewhere is not touched, whatever the password.
//
// It returns nil when Passport accepted the password; an error with errors.Is(err,
// ErrBadCredentials) when it refused it (a wrong password and an unknown handle look alike);
// otherwise the errors Login returns for the same steps (see Retryable). ctx bounds the whole
// check. The password never appears in an error or log line.
func VerifyCredentials(ctx context.Context, cfg Config, handle, password string) error {
	c, err := NewClient(cfg, handle, password, nil)
	if err != nil {
		return err
	}
	c.verifyOnly = true
	defer c.Close() // not logged in: hangs up without OUT
	addr := c.cfg.Server
	for hop := 0; ; hop++ {
		if hop > maxLoginHops {
			return fmt.Errorf("failed to verify credentials: more than %d redirects", maxLoginHops)
		}
		redirect, err := c.authenticate(ctx, addr)
		switch {
		case err != nil:
			return err
		case redirect != "":
			addr = redirect
			continue
		}
		return nil
	}
}
