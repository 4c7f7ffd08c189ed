// server.js PORT — a classic JSTP engine (npm jstp 1.1.5) listening on
// 127.0.0.1:PORT over TCP. Prints "ready" once listening, then one JSON line
// per dispatch its event handlers receive.
//   GET  ["hello", X]        answers 200 {"hello": X}
//   POST ["events", ...]     (1 to 3 more elements) prints the dispatch,
//                            answers 200 when it carries a transaction id
//   GET  ["silent", X]       prints the dispatch and never answers (the
//                            engine then answers 504 after 10 s)
'use strict';
var h = require('./harness');
var net = require('net');
var jstp = require('jstp');

var port = +process.argv[2];
if (!port) {
  process.stderr.write('usage: node server.js PORT\n');
  process.exit(2);
}

var app = {
  hello: function (engine, answer, dispatch) {
    if (answer) return;
    engine.answer(dispatch, 200, { hello: dispatch.resource[1] });
  },
  event: function (engine, answer, dispatch) {
    if (answer) return;
    h.out(dispatch);
    if (dispatch.token && dispatch.token[0]) engine.answer(dispatch, 200, { received: true });
  },
  silent: function (engine, answer, dispatch) {
    if (!answer) h.out(dispatch);
  }
};

jstp.bind({ endpoint: { method: 'GET', resource: ['hello', '*'] } }, app.hello, app);
// The engine has no "..." wildcard: "*" matches exactly one element and the
// lengths must be equal, so "events/..." is spelled as three bindings.
[['events', '*'], ['events', '*', '*'], ['events', '*', '*', '*']].forEach(function (r) {
  jstp.bind({ endpoint: { method: 'POST', resource: r } }, app.event, app);
});
jstp.bind({ endpoint: { method: 'GET', resource: ['silent', '*'] } }, app.silent, app);

// jstp.listen gives no signal when the server is up; watch for it.
var created = net.createServer;
net.createServer = function () {
  var s = created.apply(net, arguments);
  s.on('listening', function () { h.out('ready'); });
  s.on('error', function (err) {
    process.stderr.write('listen: ' + err.message + '\n');
    process.exit(1);
  });
  return s;
};
jstp.listen({ tcp: port });
