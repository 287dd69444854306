// devserve live reload: the script `devserve serve --reload` puts into HTML pages.
// The server appends the call: ({root: "../", server: "id", seq: 12}).
// root leads back to the served folder (relative: works behind a proxy, on any host);
// server and seq say which server built the page and after how many changes;
// get (when true) says the page answered a POST: it is fetched again with a GET,
// never by reload(), which would submit the form again.
//
// One event stream per browser: a SharedWorker (worker.js) holds it for every tab,
// because browsers open at most six HTTP/1.1 connections per host and one stream
// per tab would stall the seventh. Without SharedWorker the page listens itself.
//
// Kept ASCII, with no block comments, no multi-line strings and no closing-tag
// sequences: the server strips comment lines and checks the rest.
(function (config) {
  "use strict";
  if (window.__devserveReload) {
    return;
  }
  window.__devserveReload = config;
  var base = new URL(config.root + "__devserve__/", location.href);
  var seq = config.seq;
  var reloading = false;
  var heard = false;

  function reload() {
    if (!reloading) {
      reloading = true;
      if (config.get) {
        location.replace(location.href);
      } else {
        location.reload();
      }
    }
  }

  // Replace each same-origin stylesheet link with a fresh copy; the old one goes
  // once the new one has loaded, so the page never shows unstyled.
  function swapStylesheets() {
    var links = document.querySelectorAll("link[rel~=stylesheet][href]");
    var swapped = 0;
    Array.prototype.forEach.call(links, function (link) {
      var url = new URL(link.href, location.href);
      if (url.origin !== location.origin) {
        return;
      }
      url.searchParams.set("__devserve", String(Date.now()));
      var fresh = link.cloneNode(false);
      fresh.href = url.href;
      var done = function () {
        link.remove();
      };
      fresh.addEventListener("load", done);
      fresh.addEventListener("error", done);
      link.parentNode.insertBefore(fresh, link.nextSibling);
      swapped += 1;
    });
    return swapped > 0;
  }

  // Messages may come twice (from the worker and, after a fallback, directly): a
  // change is acted on once, and the server's change count only ever grows.
  function handle(message) {
    heard = true;
    if (message.type === "unsupported") {
      listenDirectly();
      return;
    }
    if (message.server !== config.server) {
      reload();
      return;
    }
    if (message.type === "hello") {
      // for a look in the console (and the tests): the stream is up
      config.connected = true;
      if (message.seq > seq) {
        reload();
      }
    } else if (message.type === "change" && message.seq > seq) {
      if (message.css && message.seq === seq + 1 && swapStylesheets()) {
        seq = message.seq;
      } else {
        reload();
      }
    }
  }

  function listenDirectly() {
    var source = new EventSource(new URL("events", base).href);
    source.onmessage = function (event) {
      handle(JSON.parse(event.data));
    };
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        setTimeout(listenDirectly, 1000);
      }
    };
  }

  function listen() {
    if (typeof SharedWorker === "function") {
      try {
        var worker = new SharedWorker(new URL("worker.js", base).href, {name: "devserve-reload"});
        worker.port.onmessage = function (event) {
          handle(event.data);
        };
        worker.onerror = listenDirectly;
        addEventListener("pagehide", function () {
          worker.port.postMessage("bye");
        });
        // A worker that loads but never passes anything on (a policy, an extension,
        // a certificate the worker may not use) must not leave the page deaf.
        setTimeout(function () {
          if (!heard) {
            listenDirectly();
          }
        }, 3000);
        return;
      } catch (error) {
        // a Content-Security-Policy or an opaque origin: listen from the page instead
      }
    }
    listenDirectly();
  }

  listen();
  addEventListener("pageshow", function (event) {
    if (event.persisted) {
      listen();
    }
  });
})
