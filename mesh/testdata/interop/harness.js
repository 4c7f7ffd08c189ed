// Shared plumbing for the interop scripts. It changes nothing in how the
// engine speaks; it only keeps the scripts' stdout machine-readable and the
// engine on the loopback interface.
'use strict';
var net = require('net');

// The engine logs every dispatch to stdout with terminal colours; stdout is
// reserved for the JSON lines the Go tests read, so its chatter goes to stderr.
console.log = function () {
  process.stderr.write(Array.prototype.join.call(arguments, ' ') + '\n');
};

// jstp.listen({tcp: port}) calls server.listen(port) on every interface;
// pin servers started with a bare port (or port + callback) to 127.0.0.1.
var listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (port, cb) {
  if (typeof port === 'number' && (arguments.length === 1 || typeof cb === 'function')) {
    return listen.call(this, port, '127.0.0.1', cb);
  }
  return listen.apply(this, arguments);
};

// A test that starts a script sets JSTP_INTEROP_WATCH_STDIN and holds the
// script's stdin open: when the test process goes away, however it ends,
// its end of the pipe closes and the script leaves with it instead of
// lingering as an orphan. (Off by default: a script started in the
// background from a shell would read EOF, or stop on terminal input.)
if (process.env.JSTP_INTEROP_WATCH_STDIN) {
  process.stdin.on('data', function () {});
  process.stdin.on('end', function () { process.exit(0); });
  process.stdin.on('error', function () { process.exit(0); });
}

// out prints one line on stdout: a string as it is (the "ready" and
// "bound" markers), anything else as JSON.
exports.out = function (v) {
  process.stdout.write((typeof v === 'string' ? v : JSON.stringify(v)) + '\n');
};

// line prints a raw line received from the wire: compact JSON when it
// parses, otherwise the text as a JSON string (the engine does send
// non-JSON lines, see docs/classic-wire.md), so stdout stays one JSON
// value per line.
exports.line = function (text) {
  try {
    exports.out(JSON.parse(text));
  } catch (e) {
    exports.out(JSON.stringify(text));
  }
};

// tapOutbound calls onLine for every line the engine's TCP client pool
// receives, onWrite after each write the pool makes has been handed to the
// kernel, and onClose(hadError) when such a connection closes. The pool uses net.connect; wrapping it sees the raw bytes
// before the engine parses (and possibly drops) them.
exports.tapOutbound = function (onLine, onWrite, onClose) {
  var connect = net.connect;
  net.connect = net.createConnection = function () {
    var sock = connect.apply(net, arguments);
    var buf = '';
    sock.on('data', function (chunk) {
      buf += chunk.toString();
      var lines = buf.split('\n');
      buf = lines.pop();
      lines.forEach(function (l) {
        if (l.trim() !== '') onLine(l);
      });
    });
    sock.on('close', function (hadError) {
      if (onClose) onClose(hadError);
    });
    var write = sock.write;
    sock.write = function (data) {
      var text = String(data);
      return write.call(sock, data, function () {
        if (onWrite) onWrite(text);
      });
    };
    return sock;
  };
};

// exitAfter ends the process after ms milliseconds with code 0.
exports.exitAfter = function (ms) {
  setTimeout(function () { process.exit(0); }, ms).unref();
};
