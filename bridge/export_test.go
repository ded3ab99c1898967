package bridge

// OpenChats returns the number of switchboard sessions a tracks, for tests that must wait
// until the client has seen one close.
func OpenChats(a *Account) int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.chats)
}
