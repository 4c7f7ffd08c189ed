package node_test

import (
	"context"
	"fmt"

	"github.com/jstp-peer/jstp-peer/dispatch"
	"github.com/jstp-peer/jstp-peer/node"
)

// Serve a resource and request it, all in one engine.
func Example() {
	n, _ := node.New()
	defer n.Close()
	n.Handle(dispatch.Endpoint{Method: "GET", Resource: []string{"greeting", ":name"}},
		func(ctx context.Context, in *node.Incoming) (any, error) {
			return "hello, " + in.Params["name"], nil
		})
	answers, _ := n.Request(context.Background(), dispatch.New("GET", "greeting", "world"))
	for a := range answers {
		code, _, _, _ := a.AnswerInfo()
		fmt.Println(code, string(a.Body))
	}
	// Output: 200 "hello, world"
}
