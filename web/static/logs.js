/* The Pod logs panel (templates/_logs.html).
 *
 * Lists the Application's Pods (GET .../pods, once the panel is opened), then streams one container's log (GET .../logs)
 * into the page with fetch's body reader, as text (textContent only: a log line is never markup).
 * The server bounds every stream (--logs-max-bytes, --logs-max-seconds); the page also keeps at
 * most MAX_CHARS characters, dropping the oldest, so a long follow does not grow the tab forever.
 */
(function () {
  "use strict";

  var MAX_CHARS = 1000000;
  var panel = document.getElementById("logs-panel");
  if (!panel) {
    return;
  }
  var podSelect = document.getElementById("logs-pod");
  var containerSelect = document.getElementById("logs-container");
  var previous = document.getElementById("logs-previous");
  var tail = document.getElementById("logs-tail");
  var follow = document.getElementById("logs-follow");
  var showButton = document.getElementById("logs-show");
  var stopButton = document.getElementById("logs-stop");
  var statusLine = document.getElementById("logs-status");
  var output = document.getElementById("logs-output");
  var pods = [];
  var running = null; // the AbortController of the stream being shown

  function say(text) {
    statusLine.textContent = text;
  }

  function option(value, text) {
    var el = document.createElement("option");
    el.value = value;
    el.textContent = text;
    return el;
  }

  function errorOf(response) {
    return response.json().then(
      function (doc) { return doc && doc.error ? doc.error : "HTTP " + response.status; },
      function () { return "HTTP " + response.status; }
    );
  }

  function fillContainers() {
    var pod = pods[podSelect.selectedIndex];
    containerSelect.replaceChildren();
    if (!pod) {
      containerSelect.disabled = true;
      return;
    }
    pod.containers.forEach(function (c) {
      var text = c.name + (c.restartCount ? " (" + c.restartCount + " restarts)" : "");
      containerSelect.appendChild(option(c.name, text));
    });
    containerSelect.disabled = pod.containers.length < 2;
  }

  function loadPods() {
    fetch(panel.dataset.podsApi, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (!response.ok) {
          return errorOf(response).then(function (message) { throw new Error(message); });
        }
        return response.json();
      })
      .then(function (doc) {
        pods = doc.items || [];
        podSelect.replaceChildren();
        pods.forEach(function (p) {
          var ready = p.containers.filter(function (c) { return c.ready; }).length;
          var text = p.name + " · " + p.owner.kind + "/" + p.owner.name +
            (p.phase ? " · " + p.phase : "") + " · " + ready + "/" + p.containers.length + " ready";
          podSelect.appendChild(option(p.name, text));
        });
        podSelect.disabled = pods.length === 0;
        showButton.disabled = pods.length === 0;
        fillContainers();
        say(pods.length ? pods.length + " Pod(s)." : "This Application has no Pods.");
      })
      .catch(function (err) {
        say("Logs are not available: " + err.message);
      });
  }

  function append(text) {
    var all = output.textContent + text;
    if (all.length > MAX_CHARS) {
      all = all.slice(all.length - MAX_CHARS);
    }
    output.textContent = all;
    output.scrollTop = output.scrollHeight;
  }

  function stop() {
    if (running) {
      running.abort();
      running = null;
    }
    stopButton.hidden = true;
    showButton.disabled = pods.length === 0;
  }

  function show(event) {
    event.preventDefault();
    stop();
    var pod = pods[podSelect.selectedIndex];
    if (!pod) {
      return;
    }
    var query = new URLSearchParams({ pod: pod.name, namespace: pod.namespace });
    if (containerSelect.value) {
      query.set("container", containerSelect.value);
    }
    if (previous.checked) {
      query.set("previous", "true");
    }
    if (tail.value) {
      query.set("tailLines", tail.value);
    }
    if (follow.checked) {
      query.set("follow", "true");
    }
    var controller = new AbortController();
    running = controller;
    output.textContent = "";
    output.hidden = false;
    stopButton.hidden = !follow.checked;
    showButton.disabled = true;
    say("Reading " + pod.name + "…");
    var decoder = new TextDecoder();
    fetch(panel.dataset.logsApi + "?" + query.toString(), {
      credentials: "same-origin",
      headers: { Accept: "text/plain" },
      signal: controller.signal,
    })
      .then(function (response) {
        if (!response.ok) {
          return errorOf(response).then(function (message) { throw new Error(message); });
        }
        var reader = response.body.getReader();
        function pump() {
          return reader.read().then(function (part) {
            if (part.done) {
              append(decoder.decode());
              return;
            }
            append(decoder.decode(part.value, { stream: true }));
            return pump();
          });
        }
        return pump();
      })
      .then(function () {
        say("End of the log of " + pod.name + ".");
      })
      .catch(function (err) {
        say(err.name === "AbortError" ? "Stopped." : "Cannot show the log: " + err.message);
      })
      .finally(function () {
        if (running === controller) {
          running = null;
        }
        stopButton.hidden = true;
        showButton.disabled = pods.length === 0;
      });
  }

  podSelect.addEventListener("change", fillContainers);
  document.getElementById("logs-form").addEventListener("submit", show);
  stopButton.addEventListener("click", stop);
  // The Pods are listed from the cluster when the panel is first opened, not on every page view.
  var details = document.getElementById("logs-details");
  var loaded = false;
  details.addEventListener("toggle", function () {
    if (details.open && !loaded) {
      loaded = true;
      loadPods();
    }
    if (!details.open) {
      stop();
    }
  });
})();
