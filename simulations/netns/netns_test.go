package netns

import (
	"os"
	"os/exec"
	"regexp"
	"testing"
)

var skipped = regexp.MustCompile(`netns: skipped: (.*)`)

// TestNetns runs run.sh: eight jstp-peer processes in network namespaces.
// It needs root and iproute2, builds the binary and takes about a minute,
// so it runs only when asked.
func TestNetns(t *testing.T) {
	if os.Getenv("JSTP_NETNS") == "" {
		t.Skip("set JSTP_NETNS=1 to run the mesh in network namespaces (needs root and iproute2)")
	}
	out, err := exec.CommandContext(t.Context(), "bash", "run.sh").CombinedOutput()
	t.Logf("%s", out)
	if m := skipped.FindSubmatch(out); m != nil {
		t.Skip(string(m[1]))
	}
	if err != nil {
		t.Fatalf("run.sh: %v", err)
	}
}
