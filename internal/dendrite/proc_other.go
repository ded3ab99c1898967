//go:build !linux

package dendrite

import (
	"os"
	"os/exec"
)

// setProcAttr is a no-op outside Linux: there is no parent-death signal.
func setProcAttr(cmd *exec.Cmd) {}

// startCmd starts cmd.
func startCmd(cmd *exec.Cmd) error {
	return cmd.Start()
}

// terminate asks dendrite to shut down.
func terminate(cmd *exec.Cmd) error {
	return cmd.Process.Signal(os.Interrupt)
}
