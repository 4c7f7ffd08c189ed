// Package netns holds run.sh, which runs a mesh of jstp-peer processes on
// one Linux machine, each in its own network namespace with its own
// address, and checks sending, binding and saturation routing across
// them (docs/simulations.md). The package's test runs the script when
// JSTP_NETNS is set.
package netns
