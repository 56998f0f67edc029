//go:build fleetsafe_testhooks

package testhooks

// Built with the tag fleetsafe_testhooks: the binary honours the test
// hooks' variables.
func init() { Enable() }
