// Package webui is the peer's web view: a single-page dashboard served
// over HTTP (`jstp-peer up --ui ADDR`), and the browser client it is built
// on, jstp.js. The page speaks JSTP to the peer through the peer's
// WebSocket gateway, exactly as any other client does: the built-in
// resources GET ["peer"], ["peers"], ["saturation"] and ["subscriptions"]
// are its data, and its "send" and "bind" views send what the user types.
//
// The HTTP side is small and defensive. It serves the embedded files
// (package assets), a configuration document that tells the page where the
// gateway is, the parsing of the URL and HTTP-like notations (so the page
// reads exactly the grammar the CLI reads, from package dispatch), and the
// "Add a replica" action when Config.AddReplica is set. Every request must
// name the configured address in its Host header, so a web page that got
// its domain name to resolve to 127.0.0.1 (DNS rebinding) is refused, and
// the POSTs must come from the page itself (same Origin, a JSON body), so
// no other site can run the action through a visitor's browser.
//
// The WebSocket gateway checks pages by their Origin: the peer must be
// started with Config.Origins among node.PeerConfig.GatewayOrigins for the
// page to connect (docs/operations.md, "Web view").
package webui
