//go:build !unix

package server

// fdLimit is unknown on this platform.
func fdLimit() int { return 0 }
