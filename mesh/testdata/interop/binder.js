// binder.js PORT ENDPOINT_JSON [ANSWER_CODE]
// Binds remotely, with the engine's own API (npm jstp 1.1.5), to
// ENDPOINT_JSON ({"method": ..., "resource": [...]}) on the classic engine at
// 127.0.0.1:PORT over TCP. Prints "bound" once the BIND has been written to
// the connection, then every line pushed back on it as one JSON line. With
// ANSWER_CODE, it answers every pushed dispatch that carries a transaction id
// with that status code, the way an application would. Exits when the
// connection closes (0 when the peer ended it, 1 on error).
'use strict';
var h = require('./harness');
var jstp = require('jstp');

var a = process.argv.slice(2);
if (a.length < 2) {
  process.stderr.write('usage: node binder.js PORT ENDPOINT_JSON [ANSWER_CODE]\n');
  process.exit(2);
}
var code = +a[2] || 0;
var announced = false;

h.tapOutbound(h.line, function (written) {
  if (!announced && /"method":"BIND"/.test(written)) {
    announced = true;
    h.out('bound');
  }
}, function (hadError) {
  // The engine's client pool never reconnects a binding: once the
  // connection is gone, so is the subscription.
  process.stdout.write('', function () { process.exit(hadError ? 1 : 0); });
});
var app = {
  pushed: function (engine, answer, dispatch) {
    if (!answer && code && dispatch.token && dispatch.token[0]) engine.answer(dispatch, code, { from: 'binder' });
  }
};
jstp.bind({ host: [['127.0.0.1', +a[0], 'tcp']], endpoint: JSON.parse(a[1]) }, app.pushed, app);
