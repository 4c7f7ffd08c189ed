// Package assets holds the files the web view serves, embedded in the
// binary so the peer needs nothing beside it and works offline: the
// browser client jstp.js (an ES module with no dependencies, which the
// WebSocket gateway serves too), and the dashboard page, its script and
// its style sheet. There is no build step: the files are served as they
// are written.
package assets
