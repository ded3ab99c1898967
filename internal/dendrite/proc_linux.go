package dendrite

import (
	"os/exec"
	"runtime"
	"syscall"
)

// setProcAttr makes the kernel kill dendrite when this program dies (a
// test timeout panic, a SIGKILL), so no homeserver outlives it.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

// startCmd starts cmd from a locked OS thread: Pdeathsig fires when the thread
// that forked exits, and a locked thread that is unlocked again is kept by the
// runtime rather than ended.
func startCmd(cmd *exec.Cmd) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	return cmd.Start()
}

// terminate asks dendrite to shut down.
func terminate(cmd *exec.Cmd) error {
	return cmd.Process.Signal(syscall.SIGTERM)
}
