// The app page's Events section: reads /api/v1/applications/<ns>/<name>/events every 5 s while
// the page is visible ("loading Events..." and sooner while the server is still listing them),
// newest first, Warnings highlighted (class event-warning). Each resource
// row of the tree gets an "events" link that narrows the list to that object (?kind=&name=
// &namespace=); the rows are re-rendered by app.js, so the links are added again whenever the
// tree changes. Text is only ever set with textContent.
(function () {
  "use strict";

  var POLL_MS = 5000;
  // While a namespace's Events are still being listed (the API answers 200 with loading: true)
  // the page asks again sooner, a bounded number of times, then falls back to POLL_MS.
  var LOADING_MS = 1000;
  var LOADING_TRIES = 30;
  var loadingTries = 0;
  var section = document.getElementById("events");
  if (!section) return;
  var api = section.getAttribute("data-api");
  var rows = document.getElementById("events-rows");
  var status = document.getElementById("events-status");
  var warnings = document.getElementById("events-warnings");
  var objectBox = document.getElementById("events-object");
  var objectName = document.getElementById("events-object-name");
  var selected = null; // {kind, name, namespace} of the resource whose events are shown
  var timer = null;

  function cell(text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text === undefined || text === null ? "" : String(text);
    return td;
  }

  // app.js's time format ("2024-05-02 10:00:05 UTC"), when it has loaded
  function when(value) {
    var format = window.gitsyncFormat;
    return format ? format.when(value) : String(value || "");
  }

  function render(items, loading) {
    var out = items.map(function (e) {
      var inv = e.involvedObject || {};
      var tr = document.createElement("tr");
      tr.className = e.type === "Warning" ? "event event-warning" : "event";
      tr.appendChild(cell(when(e.lastTimestamp), "event-when"));
      tr.appendChild(cell(e.type, "event-type"));
      tr.appendChild(cell(e.reason));
      tr.appendChild(cell(inv.kind + "/" + inv.name));
      tr.appendChild(cell(e.count));
      tr.appendChild(cell(e.message, "event-message"));
      return tr;
    });
    rows.replaceChildren.apply(rows, out);
    if (loading) {
      status.textContent = "loading Events..." + (out.length ? " (" + out.length + " so far)" : "");
    } else status.textContent = out.length ? out.length + " events" : "No events.";
  }

  function url() {
    var params = new URLSearchParams();
    if (warnings.checked) params.set("type", "Warning");
    if (selected) {
      params.set("kind", selected.kind);
      params.set("name", selected.name);
      if (selected.namespace) params.set("namespace", selected.namespace);
    }
    var query = params.toString();
    return query ? api + "?" + query : api;
  }

  function load() {
    if (timer) clearTimeout(timer);
    timer = null;
    if (document.hidden) { timer = setTimeout(load, POLL_MS); return; }
    var next = POLL_MS;
    fetch(url(), {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          status.textContent = "Events: " + (data.error || response.status);
          return;
        }
        render(data.items || [], data.loading === true);
        if (data.loading === true && loadingTries < LOADING_TRIES) {
          loadingTries += 1;
          next = LOADING_MS;
        } else if (data.loading !== true) {
          loadingTries = 0;
        }
      });
    }).catch(function () {
      status.textContent = "Events: the server did not answer";
    }).then(function () {
      timer = setTimeout(load, next);
    });
  }

  function select(resource) {
    selected = resource;
    objectBox.hidden = !resource;
    objectName.textContent = resource ? resource.kind + "/" + resource.name : "";
    load();
  }

  // data-resource is "group/kind/namespace/name" (gitsync.web.view._resource_id)
  function addLinks() {
    var nodes = document.querySelectorAll("#resources li.node[data-resource]");
    Array.prototype.forEach.call(nodes, function (li) {
      if (li.querySelector("a.node-events")) return;
      var parts = li.getAttribute("data-resource").split("/");
      if (parts.length !== 4) return;
      var link = document.createElement("a");
      link.className = "node-events";
      link.href = "#events";
      link.textContent = "events";
      link.addEventListener("click", function () {
        select({ kind: parts[1], namespace: parts[2], name: parts[3] });
      });
      li.appendChild(link);
    });
  }

  warnings.addEventListener("change", load);
  document.getElementById("events-all").addEventListener("click", function () { select(null); });
  var tree = document.getElementById("resources");
  if (tree) new MutationObserver(addLinks).observe(tree, { childList: true });
  addLinks();
  load();
})();
