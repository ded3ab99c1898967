package discord

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/bwmarrin/discordgo"
)

// An account's channels live in its category; Discord holds at most 50 channels in a category
// (CHANNEL_PARENT_MAX_CHANNELS), so when it is full they continue in numbered categories of
// the same name ("MSN — alice@example.com (2)", "(3)", …), all found again by discovery. The
// offline categories (OnlineOfflineCategories) overflow the same way. A guild holds at most
// 500 channels (30013): the owner is told.

// maxCategoryChannels is Discord's cap of channels in one category.
const maxCategoryChannels = 50

// errGuildFull is returned when Discord refuses a new channel because the guild holds 500.
var errGuildFull = errors.New("the Discord server has reached Discord's limit of 500 channels; " +
	"delete channels no longer needed (each MSN account takes 2, plus one per contact it chats with)")

// family is the index in portal.cats of the online (0) or offline (1) categories.
func family(offline bool) int {
	if offline {
		return 1
	}
	return 0
}

// numberedCategory is the name of the account's category number n of a template: the name
// itself for 1, the name and " (n)" after, within Discord's 100 characters.
func numberedCategory(tmpl, handle string, n int) string {
	name := categoryName(tmpl, handle)
	if n <= 1 {
		return name
	}
	suffix := " (" + strconv.Itoa(n) + ")"
	for utf8.RuneCountInString(name)+len(suffix) > 100 {
		_, size := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-size]
	}
	return name + suffix
}

// categoryNumber returns the number of a category of the account named name for template tmpl
// (1 for the plain name), or false.
func categoryNumber(name, tmpl, handle string) (int, bool) {
	base := categoryName(tmpl, handle)
	if name == base {
		return 1, true
	}
	open := strings.LastIndex(name, " (")
	if open < 0 || !strings.HasSuffix(name, ")") {
		return 0, false
	}
	n, err := strconv.Atoi(name[open+2 : len(name)-1])
	if err != nil || n < 2 || name != numberedCategory(tmpl, handle, n) {
		return 0, false
	}
	return n, true
}

// categoryTemplate is the name template of the online or offline categories.
func (p *portal) categoryTemplate(offline bool) string {
	if offline {
		return p.f.cfg.OfflineCategoryName
	}
	return p.f.cfg.CategoryName
}

// primaryLocked is the account's first online or offline category, or "". p.mu is held.
func (p *portal) primaryLocked(offline bool) string {
	return p.cats[family(offline)][1]
}

// categoryOfLocked reports whether id is one of the account's categories, and whether an
// offline one. p.mu is held.
func (p *portal) categoryOfLocked(id string) (offline, ok bool) {
	if id == "" {
		return false, false
	}
	for f, m := range p.cats {
		for _, c := range m {
			if c == id {
				return f == 1, true
			}
		}
	}
	return false, false
}

// allCategoriesLocked lists the account's categories. p.mu is held.
func (p *portal) allCategoriesLocked() []string {
	var out []string
	for _, m := range p.cats {
		for _, id := range m {
			out = append(out, id)
		}
	}
	return out
}

// childrenLocked counts the account's channels in category cat. p.mu is held.
func (p *portal) childrenLocked(cat string) int {
	n := 0
	for _, k := range p.known {
		if k.parent == cat {
			n++
		}
	}
	if p.rosterID != "" && p.rosterParent == cat {
		n++
	}
	return n
}

// roomyCategoryLocked returns the first of the online or offline categories with room for one
// more channel, or "" and the number the next one gets. p.mu is held.
func (p *portal) roomyCategoryLocked(offline bool) (string, int) {
	m := p.cats[family(offline)]
	nums := make([]int, 0, len(m))
	for n := range m {
		nums = append(nums, n)
	}
	slices.Sort(nums)
	next := 1
	for _, n := range nums {
		id := m[n]
		if !p.fullCats[id] && p.childrenLocked(id) < maxCategoryChannels {
			return id, 0
		}
		next = n + 1
	}
	if _, ok := m[1]; !ok {
		next = 1
	}
	return "", next
}

// setCategoryLocked records category id as number n of the online or offline categories. p.mu
// is held.
func (p *portal) setCategoryLocked(offline bool, n int, id string) {
	f := family(offline)
	if p.cats[f] == nil {
		p.cats[f] = map[int]string{}
	}
	p.cats[f][n] = id
}

// forgetCategoryLocked drops a category that was deleted. p.mu is held.
func (p *portal) forgetCategoryLocked(id string) {
	for _, m := range p.cats {
		for n, c := range m {
			if c == id {
				delete(m, n)
			}
		}
	}
	delete(p.fullCats, id)
}

// markFull records that Discord refused a channel in category cat for the 50-channel cap.
func (p *portal) markFull(cat string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.fullCats == nil {
		p.fullCats = map[string]bool{}
	}
	p.fullCats[cat] = true
}

// isParentFull reports Discord's 50035 form error CHANNEL_PARENT_MAX_CHANNELS (the category
// holds 50 channels).
func isParentFull(err error) bool {
	var re *discordgo.RESTError
	return errors.As(err, &re) && re.Message != nil && re.Message.Code == discordgo.ErrCodeInvalidFormBody &&
		strings.Contains(string(re.ResponseBody), "CHANNEL_PARENT_MAX_CHANNELS")
}

// guildFull wraps Discord's 30013 (500 channels in the guild) as errGuildFull.
func guildFull(err error) error {
	if isUnknown(err, discordgo.ErrCodeMaximumNumberOfGuildChannelsReached) {
		return fmt.Errorf("%w (%w)", errGuildFull, err)
	}
	return err
}
