// devserve live reload: the SharedWorker that holds one event stream for every tab
// of a browser and passes each message on (see client.js).
"use strict";
var ports = [];
var last = null;

function broadcast(message) {
  ports.forEach(function (port) {
    port.postMessage(message);
  });
}

function connect() {
  var source = new EventSource("events");
  source.onmessage = function (event) {
    var message = JSON.parse(event.data);
    last = {type: "hello", server: message.server, seq: message.seq};
    broadcast(message);
  };
  source.onerror = function () {
    // Closed for good (e.g. a proxy answered 502 while devserve restarted):
    // try again; otherwise the browser reconnects by itself.
    if (source.readyState === EventSource.CLOSED) {
      setTimeout(connect, 1000);
    }
  };
}

self.onconnect = function (event) {
  var port = event.ports[0];
  if (typeof EventSource !== "function") {
    port.postMessage({type: "unsupported"});
    return;
  }
  ports.push(port);
  port.onmessage = function (message) {
    if (message.data === "bye") {
      ports = ports.filter(function (other) {
        return other !== port;
      });
    }
  };
  if (last !== null) {
    port.postMessage(last);
  }
};

if (typeof EventSource === "function") {
  connect();
}
