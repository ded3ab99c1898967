package bridge

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLinkCodeGuessesLimited: a stranger guessing link codes is refused as a password guesser
// is: a few wrong codes, then TooManyAttemptsError without the code being looked at (so the
// owner's real code survives the flood), then lockouts that grow with each further wrong code.
func TestLinkCodeGuessesLimited(t *testing.T) {
	ctx := context.Background()
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	acc := loggedIn(t, core)
	code, _, err := core.IssueLinkCode(ctx, acc.Handle(), matrixUser)
	if err != nil {
		t.Fatal(err)
	}
	mallory := FrontendUser{"discord", "666"}
	for i := range 10 {
		guess := "AAAA-AAAA-AAA" + string(rune('A'+i))
		if i == 6 {
			guess = code // the right code, once the stranger is throttled
		}
		_, err := core.RedeemLinkCode(ctx, guess, mallory)
		var tm *TooManyAttemptsError
		switch {
		case i < DefaultUserLoginBurst && !errors.Is(err, ErrInvalidLinkCode):
			t.Fatalf("guess %d: %v, want ErrInvalidLinkCode", i, err)
		case i >= DefaultUserLoginBurst && !errors.As(err, &tm):
			t.Fatalf("guess %d: %v, want TooManyAttemptsError", i, err)
		}
	}
	if acc.IsOwner(mallory) {
		t.Fatal("the stranger became an owner")
	}

	// The owner's code was never consumed by the throttled attempt: the intended user redeems it.
	if _, err := core.RedeemLinkCode(ctx, code, discordUser); err != nil {
		t.Fatalf("the owner's code after the flood: %v", err)
	}
	if !acc.IsOwner(discordUser) {
		t.Fatal("redeeming did not make the user an owner")
	}

	// A further wrong code once the limit lets one through locks the stranger out for longer.
	_ = core.clock.SleepUntil(ctx, core.clock.Now().Add(time.Hour/2))
	if _, err := core.RedeemLinkCode(ctx, "BBBB-BBBB-BBBB", mallory); !errors.Is(err, ErrInvalidLinkCode) {
		t.Fatalf("guess after the wait: %v", err)
	}
	var tm *TooManyAttemptsError
	if _, err := core.RedeemLinkCode(ctx, "CCCC-CCCC-CCCC", mallory); !errors.As(err, &tm) || tm.RetryAfter != 2*DefaultUserLoginInterval {
		t.Fatalf("after a fourth wrong code: %v, want a lockout of %v", err, 2*DefaultUserLoginInterval)
	}
}

// TestLinkCodeDiesWithItsIssuer: a code whose issuer has since logged out of the account no
// longer adds anyone, even though the account lives on for its other owners.
func TestLinkCodeDiesWithItsIssuer(t *testing.T) {
	ctx := context.Background()
	core := newTestCore(t, testStore(t), newFakeServer(), Config{})
	acc := loggedIn(t, core)
	first, _, err := core.IssueLinkCode(ctx, acc.Handle(), matrixUser)
	if err != nil {
		t.Fatal(err)
	}
	if _, err = core.RedeemLinkCode(ctx, first, discordUser); err != nil {
		t.Fatal(err)
	}
	left, _, err := core.IssueLinkCode(ctx, acc.Handle(), matrixUser)
	if err != nil {
		t.Fatal(err)
	}
	if err = core.Logout(ctx, matrixUser, acc.Handle()); err != nil {
		t.Fatal(err)
	}
	if core.Account(acc.Handle()) == nil {
		t.Fatal("the account went away with an owner left")
	}
	other := FrontendUser{"matrix", "@mallory:example.org"}
	if _, err = core.RedeemLinkCode(ctx, left, other); !errors.Is(err, ErrInvalidLinkCode) {
		t.Fatalf("code of an issuer who left: %v, want ErrInvalidLinkCode", err)
	}
	if acc.IsOwner(other) {
		t.Fatal("a code outlived its issuer's ownership")
	}
}
