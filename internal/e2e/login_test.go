package e2e

import (
	"strings"
	"testing"

	"github.com/bwmarrin/discordgo"

	"github.com/msn-bridge/msn-bridge/bridge"
)

// loginModal submits the Discord login modal as the guild owner and returns the final answer.
func (m *mirror) loginModal(email, password string) string {
	m.t.Helper()
	row := func(id, v string) discordgo.MessageComponent {
		return discordgo.ActionsRow{Components: []discordgo.MessageComponent{discordgo.TextInput{CustomID: id, Value: v}}}
	}
	iid, tok := m.dc.InjectModalSubmit(m.dc.OwnerID(), m.gen, discordgo.ModalSubmitInteractionData{
		CustomID:   "msn-login",
		Components: []discordgo.MessageComponent{row("email", email), row("password", password)},
	})
	if iid == "" {
		m.t.Fatal("could not inject the login modal")
	}
	var text string
	waitFor(m.t, "answer to the login modal", func() bool {
		if o := m.dc.Original(tok); o != nil && o.Content != "" {
			text = o.Content
			return true
		}
		return false
	})
	return text
}

// TestDiscordLoginLeavesMatrixSessionAlone: alice is bridged through Matrix; a Discord user who
// knows her address tries her account. A wrong password is refused as for any account and her
// MSN session goes on untouched; the right one is told the account is bridged and to use a link
// code, and attaches nothing.
func TestDiscordLoginLeavesMatrixSessionAlone(t *testing.T) {
	m := newMirror(t)
	m.loginMatrix()
	waitFor(t, "alice online on MSN", func() bool { return m.ms.Online(alice) })
	acc := m.core.Account(alice)

	if ans := m.loginModal(alice, "guessed-password"); !strings.Contains(ans, "refused the e-mail address or password") {
		t.Errorf("wrong password answered %q", ans)
	}
	if ans := m.loginModal(alice, alicePW); !strings.Contains(ans, "already bridged") || !strings.Contains(ans, "link-code") {
		t.Errorf("right password answered %q", ans)
	}
	if n := m.logins(); n != 1 {
		t.Errorf("%d MSN logins of alice, want 1", n)
	}
	if st := acc.State(); st.State != bridge.StateOnline || !m.ms.Online(alice) {
		t.Errorf("alice's session after the attempts: %+v", st)
	}
	if owners := acc.Owners(); len(owners) != 1 || owners[0].Frontend != "matrix" || len(acc.Attached()) != 1 {
		t.Errorf("owners %v attached %v, want Matrix alone", owners, acc.Attached())
	}
}
