// gitsync live updates by server push: an EventSource on the page's stream (data-stream), with
// app.js's JSON polling as the fallback. While the stream is healthy nothing polls; when it
// fails the page polls and tries the stream again later (5 s, doubling up to a minute).
(function () {
  "use strict";

  var RETRY_FIRST_MS = 5000;
  var RETRY_MAX_MS = 60000;
  var EVENTS = ["app", "deleted"];

  // follow(url, onEvent, fallback, catchUp):
  //   onEvent(name, doc)  - an "app" (list row or app document) or "deleted" event
  //   fallback.start()    - poll (the stream failed); fallback.stop() - stop polling
  //   fallback.fetchOnce() - one read of the JSON API, after a gap in the stream
  //   fallback.alive()     - false once the session has ended: no more tries
  //   catchUp             - fetch once on every open (the list: the stream sends no first state)
  function follow(url, onEvent, fallback, catchUp) {
    if (!url || typeof window.EventSource !== "function") {
      mode("polling");
      fallback.start();
      return;
    }
    var source = null;
    var retryMs = RETRY_FIRST_MS;
    var opened = false;

    // what the page does now, for tests and styles: body[data-live="streaming"|"polling"]
    function mode(name) { document.body.setAttribute("data-live", name); }

    function open() {
      source = new EventSource(url); // same origin: the session cookie goes with it
      source.addEventListener("open", function () {
        mode("streaming");
        fallback.stop();
        retryMs = RETRY_FIRST_MS;
        if (opened || catchUp) fallback.fetchOnce(); // what changed while no stream was open
        opened = true;
      });
      EVENTS.forEach(function (name) {
        source.addEventListener(name, function (event) {
          var doc;
          try { doc = JSON.parse(event.data); } catch (e) { return; }
          onEvent(name, doc);
        });
      });
      // the client fell too far behind: the server dropped its queue
      source.addEventListener("resync", function () { fallback.fetchOnce(); });
      // the stream's lifetime is over: open the next one at once
      source.addEventListener("reconnect", function () {
        source.close();
        open();
      });
      source.addEventListener("error", function () {
        source.close();
        mode("polling");
        fallback.start();
        setTimeout(function () {
          if (fallback.alive()) open(); // not after the session ended (polling saw a 401)
        }, retryMs);
        retryMs = Math.min(retryMs * 2, RETRY_MAX_MS);
      });
    }
    open();
  }

  window.gitsyncLive = follow;
})();
