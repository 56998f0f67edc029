//go:build fleetsafe_testhooks

package modutil

// Built with the tag fleetsafe_testhooks: the binary honours the test
// hooks' variables (testhooks.go).
func init() { EnableTestHooks() }
