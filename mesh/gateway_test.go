package mesh

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/jstp-peer/jstp-peer/internal/webui/assets"
)

// echoIngress writes every frame a link reads back to it.
type echoIngress struct{}

func (echoIngress) Attach(l Link) FrameFunc {
	return func(ctx context.Context, frame []byte, err error) {
		if err != nil {
			return
		}
		c := l.(*Conn)
		_ = c.q.EnqueueFrame(ctx, append([]byte(nil), frame...))
	}
}

// TestGatewayServesClient: the WebSocket gateway hands the browser client
// to plain GETs of ClientPath, importable from any origin, while
// upgrades keep working on every path, that one included.
func TestGatewayServesClient(t *testing.T) {
	g, err := ListenWS("127.0.0.1:0", echoIngress{}, GatewayConfig{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	base := "http://" + g.Addr().String()

	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, base+ClientPath, nil)
	req.Header.Set("Origin", "https://app.example.org")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || !bytes.Equal(body, assets.Client) || len(body) == 0 {
		t.Fatalf("GET %s: %d, %d bytes (want the %d of the client)", ClientPath, res.StatusCode, len(body), len(assets.Client))
	}
	for k, want := range map[string]string{"Content-Type": assets.ClientType, "Access-Control-Allow-Origin": "*", "X-Content-Type-Options": "nosniff"} {
		if got := res.Header.Get(k); got != want {
			t.Errorf("%s = %q, want %q", k, got, want)
		}
	}

	// Any other plain request is not served.
	res, err = http.Get(base + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode == http.StatusOK {
		t.Fatalf("GET /index.html: %d", res.StatusCode)
	}
	if p, err := http.Post(base+ClientPath, "text/plain", nil); err != nil {
		t.Fatal(err)
	} else if p.Body.Close(); p.StatusCode == http.StatusOK {
		t.Fatalf("POST %s: %d", ClientPath, p.StatusCode)
	}

	// An upgrade on the client's path is a connection like any other.
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, "ws://"+g.Addr().String()+ClientPath, nil)
	if err != nil {
		t.Fatalf("upgrade on %s: %v", ClientPath, err)
	}
	defer conn.CloseNow()
	msg := `{"protocol":["JSTP","0.4"],"method":"GET","resource":["x"],"timestamp":1}`
	if err := conn.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	typ, got, err := conn.Read(ctx)
	if err != nil || typ != websocket.MessageText || string(got) != msg {
		t.Fatalf("echo: %v %q %v", typ, got, err)
	}
}
