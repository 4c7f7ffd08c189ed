// client.js PORT METHOD RESOURCE_JSON [BODY_JSON] [TIMEOUT_MS]
// Sends one dispatch with the engine's own API (npm jstp 1.1.5) to the
// classic engine at 127.0.0.1:PORT over TCP, asking for an answer (the
// engine then puts a transaction id in token[0]). Prints every line that
// comes back on that connection as one JSON line, and exits 0 after the
// first ANSWER, or after TIMEOUT_MS (default 12000: the engine's own answer
// timeout is 10 s). Exits 1 if the connection fails or closes first.
'use strict';
var h = require('./harness');
var jstp = require('jstp');

var a = process.argv.slice(2);
if (a.length < 3) {
  process.stderr.write('usage: node client.js PORT METHOD RESOURCE_JSON [BODY_JSON] [TIMEOUT_MS]\n');
  process.exit(2);
}
if (/^(BIND|RELEASE|ANSWER)$/i.test(a[1])) {
  process.stderr.write('client.js sends regular dispatches; use binder.js to bind\n');
  process.exit(2);
}
var pack = {
  method: a[1].toUpperCase(),
  host: [['127.0.0.1', +a[0], 'tcp']],
  resource: JSON.parse(a[2])
};
if (a[3] !== undefined && a[3] !== '') pack.body = JSON.parse(a[3]);
h.exitAfter(+a[4] || 12000);

function done() {
  // Let stdout drain before leaving.
  process.stdout.write('', function () { process.exit(0); });
}

h.tapOutbound(function (line) {
  h.line(line);
  try {
    if (String(JSON.parse(line).method).toUpperCase() === 'ANSWER') done();
  } catch (e) { /* not JSON: printed as a string above */ }
}, null, function () {
  process.stderr.write('client: connection closed before an ANSWER\n');
  process.stdout.write('', function () { process.exit(1); });
});
jstp.dispatch(pack, function (engine, answer) { if (answer) done(); }, {});
