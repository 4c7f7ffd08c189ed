//go:build race

package main

// buildFlags are the flags testBinary builds with: those of the test
// binary itself, so the go tool reuses the packages it compiled for the
// tests (a build without -race would compile libp2p again, minutes on a
// small machine with a cold cache).
var buildFlags = []string{"-race"}
