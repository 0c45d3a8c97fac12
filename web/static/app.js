// gitsync status UI: live updates (polling the JSON API every 2 s), actions with a confirmation
// dialog, and the inline diff. Plain JavaScript, no build step, nothing inline (the page's CSP
// allows scripts from /static only). Text from the API is only ever set with textContent, never
// parsed as HTML. The pages work without this file: forms post and the diff has its own page.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var body = document.body;

  function csrfToken() {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  }

  function statusClass(value) {
    return String(value || "").toLowerCase().replace(/[^a-z]/g, "") || "unknown";
  }

  function when(value) {
    value = String(value || "");
    if (value.length >= 20 && value.charAt(10) === "T" && value.slice(-1) === "Z") {
      return value.slice(0, 10) + " " + value.slice(11, -1) + " UTC";
    }
    return value;
  }

  function firstLine(value) {
    var text = String(value || "").trim();
    return text ? text.split(/\r?\n/)[0] : "";
  }

  var formats = {
    when: when,
    first_line: firstLine,
    short: function (v) { return String(v || "").slice(0, 7); },
  };

  function pick(doc, path) {
    return path.split(".").reduce(function (obj, key) {
      return obj && typeof obj === "object" ? obj[key] : undefined;
    }, doc);
  }

  // el("span", {class: "x", "data-y": "z"}, "text", child, ...)
  function el(tag, attrs) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      if (attrs[name] !== null && attrs[name] !== undefined && attrs[name] !== false) {
        node.setAttribute(name, attrs[name] === true ? "" : String(attrs[name]));
      }
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === "") continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function badge(kind, status, field) {
    var attrs = { class: "badge " + kind + "-" + statusClass(status) };
    if (field) {
      attrs["data-badge"] = field;
      attrs["data-kind"] = kind;
    }
    return el("span", attrs, status || "Unknown");
  }

  function setBadge(node, status) {
    var kind = node.getAttribute("data-kind");
    var cls = "badge " + kind + "-" + statusClass(status);
    if (node.className !== cls) node.className = cls;
    var text = status || "Unknown";
    if (node.textContent !== text) node.textContent = text;
  }

  // Update every [data-field] and [data-badge] under root from doc.
  function fill(root, doc) {
    root.querySelectorAll("[data-field]").forEach(function (node) {
      var value = pick(doc, node.getAttribute("data-field"));
      var format = formats[node.getAttribute("data-format")];
      var text = value === undefined || value === null ? "" : String(value);
      if (format) text = format(text);
      if (node.getAttribute("data-field") === "revision.short" && !text) text = "—";
      if (node.getAttribute("data-field") === "lastSyncedAt" && !text) text = "never";
      if (node.textContent !== text) node.textContent = text;
    });
    root.querySelectorAll("[data-badge]").forEach(function (node) {
      var value = pick(doc, node.getAttribute("data-badge"));
      if (node.getAttribute("data-badge") === "operation.phase" && !value) value = "None";
      setBadge(node, value);
    });
  }

  function showLiveError(message) {
    var node = document.getElementById("live-error");
    if (!node) return;
    node.textContent = message || "";
    node.hidden = !message;
  }

  function getJSON(url) {
    return fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
      cache: "no-store",
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        return { ok: response.ok, status: response.status, data: data };
      });
    });
  }

  // Poll url every POLL_MS while the page is visible; apply(data) on success.
  function poll(url, apply) {
    var timer = null;
    var stopped = false;
    function tick() {
      timer = null;
      if (stopped) return;
      if (document.hidden) { schedule(); return; }
      getJSON(url).then(function (result) {
        if (result.status === 401) {
          stopped = true;
          showLiveError("Your session has ended: reload the page to log in again.");
          return;
        }
        if (!result.ok) {
          showLiveError("Live updates paused: " + (result.data.error || result.status));
        } else {
          showLiveError("");
          apply(result.data);
        }
        schedule();
      }, function () {
        showLiveError("Live updates paused: the server cannot be reached.");
        schedule();
      });
    }
    function schedule() {
      if (!stopped && timer === null) timer = setTimeout(tick, POLL_MS);
    }
    schedule();
    return {
      now: function () {
        if (timer !== null) clearTimeout(timer);
        tick();
      },
    };
  }

  // -- the list ------------------------------------------------------------------------------

  function startList() {
    var api = body.getAttribute("data-api");
    var rows = {};
    document.querySelectorAll("tr[data-app]").forEach(function (row) {
      rows[row.getAttribute("data-app")] = row;
    });
    poll(api, function (data) { // api carries the page's filters and page, normalized
      var seen = 0;
      (data.items || []).forEach(function (item) {
        var row = rows[item.namespace + "/" + item.name];
        if (row) {
          seen += 1;
          fill(row, item);
        }
      });
      var changed = seen !== Object.keys(rows).length || seen !== (data.items || []).length;
      var notice = document.getElementById("list-changed");
      if (notice) notice.hidden = !changed;
      var count = document.querySelector("h1 .count");
      if (count && typeof data.total === "number") count.textContent = String(data.total);
    });
  }

  // -- one application -----------------------------------------------------------------------

  function hidden(name, value) {
    return el("input", { type: "hidden", name: name, value: value });
  }

  function formFor(app, action, confirmText, extra) {
    var path = encodeURIComponent(app.namespace) + "/" + encodeURIComponent(app.name);
    var form = el("form", {
      method: "post",
      action: "/apps/" + path + "/" + action,
      "data-api": "/api/v1/applications/" + path + "/" + action,
      "data-confirm": confirmText,
    }, hidden("csrf_token", csrfToken()));
    (extra || []).forEach(function (node) { form.appendChild(node); });
    return form;
  }

  function renderResources(app) {
    var list = document.getElementById("resources");
    if (!list) return;
    var items = (app.resources || []).map(function (r) {
      return el("li", { class: "node", "data-resource": r.id },
        el("span", { class: "kind" }, r.kind), " ",
        el("span", { class: "name" }, r.name), " ",
        r.namespace ? el("span", { class: "muted" }, r.namespace) : null, " ",
        badge("sync", r.status), " ",
        r.health && r.health.status ? badge("health", r.health.status) : null, " ",
        r.health && r.health.message ? el("span", { class: "muted msg" }, r.health.message) : null,
        r.lastResult && r.lastResult.status
          ? el("span", { class: "result" }, "last sync: " + r.lastResult.status) : null);
    });
    if (!items.length) items = [el("li", { class: "empty" }, "No objects recorded yet.")];
    list.replaceChildren.apply(list, items);
  }

  function renderOperation(app) {
    var tbody = document.getElementById("operation-resources");
    if (!tbody) return;
    var rows = ((app.operation || {}).resources || []).map(function (r) {
      return el("tr", {},
        el("td", { "data-label": "Kind" }, r.kind),
        el("td", { "data-label": "Namespace" }, r.namespace),
        el("td", { "data-label": "Name" }, r.name),
        el("td", { "data-label": "Result" }, badge("result", r.status)),
        el("td", { "data-label": "Message" }, r.message));
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderHistory(app) {
    var tbody = document.getElementById("history");
    if (!tbody) return;
    var canAct = body.getAttribute("data-can-act") === "1";
    var rows = (app.history || []).map(function (h) {
      var cells = [
        el("td", { "data-label": "#" }, String(h.id)),
        el("td", { "data-label": "Revision" }, el("code", {}, h.short)),
        el("td", { "data-label": "Commit" }, firstLine(h.message), el("div", { class: "muted" }, h.author)),
        el("td", { "data-label": "Deployed" }, when(h.deployedAt)),
        el("td", { "data-label": "Result" }, badge("phase", h.result)),
        el("td", { "data-label": "By" }, h.initiatedBy),
      ];
      if (canAct) {
        var text = "Roll back " + app.namespace + "/" + app.name + " to history entry #" + h.id +
          " (" + h.short + ")? Automated sync pauses until you resume it.";
        cells.push(el("td", {}, formFor(app, "rollback", text, [
          hidden("id", String(h.id)),
          el("button", { type: "submit", class: "small" }, "Roll back"),
        ])));
      }
      return el.apply(null, ["tr", { "data-history": String(h.id) }].concat(cells));
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function renderConditions(app) {
    var tbody = document.getElementById("conditions");
    if (!tbody) return;
    var rows = (app.conditions || []).map(function (c) {
      return el("tr", {},
        el("td", { "data-label": "Type" }, c.type),
        el("td", { "data-label": "Status" }, c.status),
        el("td", { "data-label": "Reason" }, c.reason),
        el("td", { "data-label": "Message" }, c.message),
        el("td", { "data-label": "Since" }, when(c.lastTransitionTime)));
    });
    tbody.replaceChildren.apply(tbody, rows);
  }

  function startApp() {
    var last = {};
    var sections = {
      resources: renderResources,
      operation: renderOperation,
      history: renderHistory,
      conditions: renderConditions,
    };
    var poller = poll(body.getAttribute("data-api"), function (app) {
      fill(document.querySelector("main"), app);
      Object.keys(sections).forEach(function (name) {
        var key = JSON.stringify(app[name]);
        if (last[name] !== key) sections[name](app);
        last[name] = key;
      });
      // Pause while automated sync runs; Resume while it is paused (after a rollback, too)
      document.querySelectorAll("[data-show-when]").forEach(function (form) {
        var paused = Boolean(app.automationPaused);
        form.hidden = form.getAttribute("data-show-when") === "paused"
          ? !paused : paused || !app.automated;
      });
    });
    window.gitsyncPoll = poller;
    var link = document.getElementById("show-diff");
    if (link) {
      link.addEventListener("click", function (event) {
        event.preventDefault();
        loadDiff(link.getAttribute("data-api"));
      });
    }
  }

  function diffLine(line) {
    var cls = "ctx";
    if (line.indexOf("+++") === 0 || line.indexOf("---") === 0) cls = "file";
    else if (line.indexOf("@@") === 0) cls = "hunk";
    else if (line.charAt(0) === "+") cls = "add";
    else if (line.charAt(0) === "-") cls = "del";
    return el("span", { class: cls }, line + "\n");
  }

  function loadDiff(url) {
    var target = document.getElementById("diff");
    target.replaceChildren(el("p", { class: "muted" }, "Computing the diff…"));
    getJSON(url).then(function (result) {
      if (!result.ok) {
        target.replaceChildren(el("p", { class: "flash flash-error" },
          result.data.error || "The diff could not be computed."));
        return;
      }
      var doc = result.data;
      var parts = [el("p", { class: "muted" }, "Revision ",
        el("code", {}, String(doc.revision.sha || "").slice(0, 12)), ". Secret values are masked.")];
      (doc.errors || []).forEach(function (e) {
        parts.push(el("p", { class: "flash flash-error" }, e.resource + ": " + e.error));
      });
      (doc.resources || []).forEach(function (r) {
        var pre = el("pre", { class: "diff" });
        String(r.diff || "").split("\n").forEach(function (line, i, all) {
          if (i < all.length - 1 || line) pre.appendChild(diffLine(line));
        });
        parts.push(el("section", { class: "diff-resource", "data-resource": r.id },
          el("h3", {}, el("span", { class: "kind" }, r.kind), " ",
            (r.namespace ? r.namespace + "/" : "") + r.name, " ", badge("sync", r.status)),
          r.error ? el("p", { class: "flash flash-error" }, r.error) : null,
          r.diff ? pre : el("p", { class: "muted" }, r.status === "Extraneous"
            ? "In the cluster but no longer in Git (a sync with prune deletes it)." : "")));
      });
      if (!(doc.resources || []).length) {
        parts.push(el("p", { class: "empty" }, "In sync: the cluster matches Git."));
      }
      target.replaceChildren.apply(target, parts);
    }, function () {
      target.replaceChildren(el("p", { class: "flash flash-error" }, "The server cannot be reached."));
    });
  }

  // -- actions -------------------------------------------------------------------------------

  function showResult(ok, message) {
    var node = document.getElementById("action-result");
    if (!node) return;
    node.className = "flash " + (ok ? "flash-ok" : "flash-error");
    node.textContent = message;
    node.hidden = false;
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!form.matches || !form.matches("form[data-confirm]")) return;
    if (!window.confirm(form.getAttribute("data-confirm"))) {
      event.preventDefault();
      return;
    }
    var api = form.getAttribute("data-api");
    if (!api || !window.fetch) return; // the plain form post, answered with a redirect
    event.preventDefault();
    var payload = {};
    var prune = form.querySelector('input[name="prune"]');
    if (prune) payload.prune = prune.checked;
    var id = form.querySelector('input[name="id"]');
    if (id) payload.id = Number(id.value);
    var buttons = form.querySelectorAll("button");
    buttons.forEach(function (b) { b.disabled = true; });
    fetch(api, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRF-Token": csrfToken(),
      },
      body: JSON.stringify(payload),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        showResult(response.ok, response.ok ? data.message : (data.error || "failed: " + response.status));
      });
    }, function () {
      showResult(false, "The server cannot be reached.");
    }).then(function () {
      buttons.forEach(function (b) { b.disabled = false; });
      var details = form.closest("details");
      if (details) details.open = false;
      if (window.gitsyncPoll) window.gitsyncPoll.now();
    });
  });

  var page = body.getAttribute("data-page");
  if (page === "apps") startList();
  if (page === "app") startApp();
})();
