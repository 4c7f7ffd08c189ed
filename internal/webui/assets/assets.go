package assets

import "embed"

// Files are the web view's files, at the root of the file system:
// index.html, app.js, style.css, favicon.svg and jstp.js.
//
//go:embed index.html app.js style.css favicon.svg jstp.js
var Files embed.FS

// Client is jstp.js, the browser client.
//
//go:embed jstp.js
var Client []byte

// ClientType is the media type to serve Client with: browsers load ES
// modules only with a JavaScript type.
const ClientType = "text/javascript; charset=utf-8"
