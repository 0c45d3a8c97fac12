// gitsync status UI: live updates (server-sent events, live.js; else polling the JSON API every 2 s), actions with a confirmation
// dialog, the inline diff and the rollout panel (weight bar, pause countdown, analysis charts
// drawn as SVG). Plain JavaScript, no build step, nothing inline (the page's CSP allows scripts
// from /static only). Text from the API is only ever set with textContent, never parsed as HTML.
// The pages work without this file: forms post and the diff has its own page.
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

  // shared with the page parts' own scripts (events.js), which load after this one
  window.gitsyncFormat = { when: when };

  var formats = {
    when: when,
    first_line: firstLine,
    // a chart's revision (chart@version) is shown whole, a commit's first 7 hex digits
    short: function (v) { v = String(v || ""); return v.indexOf("@") >= 0 ? v : v.slice(0, 7); },
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
      var dash = ["revision.short", "chartVersion"];
      if (dash.indexOf(node.getAttribute("data-field")) >= 0 && !text) text = "—";
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

  // Poll url every POLL_MS while the page is visible; apply(data) on success. With a stream
  // ({url, onEvent, catchUp}, live.js) polling only runs while the stream is down.
  function poll(url, apply, stream) {
    var timer = null;
    var stopped = false;
    var streaming = false;
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
      if (!stopped && !streaming && timer === null) timer = setTimeout(tick, POLL_MS);
    }
    if (stream && stream.url && window.gitsyncLive) {
      streaming = true;
      window.gitsyncLive(stream.url, stream.onEvent, {
        start: function () { streaming = false; schedule(); },
        stop: function () {
          streaming = true;
          if (timer !== null) clearTimeout(timer);
          timer = null;
          showLiveError("");
        },
        fetchOnce: function () { if (timer === null) tick(); },
        alive: function () { return !stopped; },
      }, stream.catchUp);
    } else {
      schedule();
    }
    return {
      now: function () {
        if (timer !== null) clearTimeout(timer);
        tick();
      },
      streaming: function () { return streaming; },
    };
  }

  // -- the list ------------------------------------------------------------------------------

  function startList() {
    var api = body.getAttribute("data-api");
    var rows = {};
    document.querySelectorAll("tr[data-app]").forEach(function (row) {
      rows[row.getAttribute("data-app")] = row;
    });
    var lastRollouts = {};
    var listPoll = null;
    var rolloutRead = null;
    var stream = {
      url: body.getAttribute("data-stream"),
      catchUp: true,
      // a row of this page changed: fill it; an app leaving shows the notice. Apps not on this
      // page are not looked up. A row's rollouts are read from the Rollouts, not carried by the
      // stream: while an app on the page is Progressing or shows a rollout, an event about it
      // reads the list once (debounced). A Rollout also moves with no Application event (its
      // last step, its end), so while any row shows one the list is read every POLL_MS too -
      // as the application page reads its rollouts; no rollout shown, no poll.
      onEvent: function (name, item) {
        var id = item.namespace + "/" + item.name;
        var row = rows[id];
        if (!row) return;
        if (name === "app") fill(row, item);
        var notice = document.getElementById("list-changed");
        if (name === "deleted" && notice) notice.hidden = false;
        var progressing = item.health && item.health.status === "Progressing";
        var shown = lastRollouts[id] && lastRollouts[id] !== "[]";
        if (name === "app" && (progressing || shown)) readRollouts(300);
      },
    };
    function readRollouts(delay) {
      if (listPoll && rolloutRead === null) {
        rolloutRead = setTimeout(function () { rolloutRead = null; listPoll.now(); }, delay);
      }
    }
    listPoll = poll(api, function (data) { // api carries the page's filters and page, normalized
      var seen = 0;
      (data.items || []).forEach(function (item) {
        var id = item.namespace + "/" + item.name;
        var row = rows[id];
        if (row) {
          seen += 1;
          fill(row, item);
          var key = JSON.stringify(item.rollouts || []);
          var cell = row.querySelector(".rollouts-cell");
          if (cell && lastRollouts[id] !== key) {
            cell.replaceChildren.apply(cell, (item.rollouts || []).map(rolloutCell));
          }
          lastRollouts[id] = key;
        }
      });
      var showing = Object.keys(lastRollouts).some(function (id) {
        return lastRollouts[id] !== "[]";
      });
      if (showing && listPoll && listPoll.streaming()) readRollouts(POLL_MS); // else: polling
      var changed = seen !== Object.keys(rows).length || seen !== (data.items || []).length;
      var notice = document.getElementById("list-changed");
      if (notice) notice.hidden = !changed;
      var count = document.querySelector("h1 .count");
      if (count && typeof data.total === "number") count.textContent = String(data.total);
      document.querySelectorAll("[data-count]").forEach(function (node) { // the counters
        var parts = node.getAttribute("data-count").split(":");
        var counts = (data.counts || {})[parts[0]] || {};
        node.textContent = String(counts[parts[1]] || 0);
      });
    }, stream);
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

  // as the macro duration in _history.html
  function duration(seconds) {
    if (typeof seconds !== "number") return "\u2014";
    if (seconds < 60) return seconds + "s";
    return Math.floor(seconds / 60) + "m " + Math.floor(seconds % 60) + "s";
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
        el("td", { "data-label": "Duration" }, duration(h.durationSeconds)),
        el("td", { "data-label": "Result" }, badge("phase", h.result),
          h.resultMessage ? el("div", { class: "muted" }, h.resultMessage) : null),
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
    var applyApp = function (app) {
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
      // an app that starts listing a Rollout gets the panel without a reload
      if ((app.resources || []).some(function (r) {
        return r.group === "gitsync.dev" && r.kind === "Rollout";
      })) startRollouts();
    };
    var poller = poll(body.getAttribute("data-api"), applyApp, {
      url: body.getAttribute("data-stream"),
      catchUp: false, // the stream's first event is the app's document
      onEvent: function (name, app) {
        if (name === "app") applyApp(app);
        else showLiveError("This application was deleted.");
      },
    });
    window.gitsyncPoll = poller;
    if (!document.getElementById("rollouts-panel").hidden) startRollouts();
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

  // -- rollouts ------------------------------------------------------------------------------
  // The same markup as the macros rollout_panel / rollout_cell / analysis_run in _macros.html.

  var SVG_NS = "http://www.w3.org/2000/svg";

  function svg(tag, attrs) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, String(attrs[name]));
    });
    for (var i = 2; i < arguments.length; i++) {
      var child = arguments[i];
      if (child === null || child === undefined || child === "") continue;
      node.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function newLabel(r) { return r.strategy === "blueGreen" ? "new" : "canary"; }

  function weightBar(r) {
    var w = r.weight || { stable: 100, canary: 0 };
    return svg("svg", {
      class: "weight-bar", viewBox: "0 0 100 10", preserveAspectRatio: "none", role: "img",
      focusable: "false",
      "aria-label": "stable " + w.stable + " %, " + newLabel(r) + " " + w.canary + " %",
    },
    svg("rect", { class: "bar-stable", x: 0, y: 0, width: w.stable, height: 10 }),
    svg("rect", { class: "bar-canary", x: w.stable, y: 0, width: w.canary, height: 10 }));
  }

  function rolloutCell(r) {
    return el("div", { class: "rollout-cell", "data-rollout": r.name },
      badge("rollout", r.phase), " ",
      el("span", { class: "name" }, r.name), " ",
      r.stepCount ? el("span", { class: "rollout-step" },
        r.complete ? "done" : "step " + r.stepNumber + "/" + r.stepCount) : null, " ",
      el("span", { class: "weight-text" }, newLabel(r) + " " + r.weight.canary + " %"), " ",
      weightBar(r));
  }

  // chart geometry: as gitsync.web.rollouts.chart
  var CHART_W = 240, CHART_H = 72, CHART_PAD = 8, CHART_LEFT = 34;
  var MARKERS = { Successful: "circle", Failed: "cross", Inconclusive: "square", Error: "triangle" };

  function num(v) { return String(Math.round(v * 10) / 10); }

  function markerPath(shape, x, y) {
    var r = 3.5;
    if (shape === "cross") {
      return "M" + num(x - r) + " " + num(y - r) + "L" + num(x + r) + " " + num(y + r) +
        "M" + num(x - r) + " " + num(y + r) + "L" + num(x + r) + " " + num(y - r);
    }
    if (shape === "square") return "M" + num(x - 3) + " " + num(y - 3) + "h6v6h-6Z";
    if (shape === "triangle") {
      return "M" + num(x) + " " + num(y - 4) + "L" + num(x + 4) + " " + num(y + 3) +
        "L" + num(x - 4) + " " + num(y + 3) + "Z";
    }
    return "M" + num(x - r) + " " + num(y) + "a3.5 3.5 0 1 0 7 0a3.5 3.5 0 1 0 -7 0";
  }

  function measuredValue(text) {
    if (text === "true") return 1;
    if (text === "false") return 0;
    if (text === "" || text === null || text === undefined) return null;
    var v = Number(text);
    return isFinite(v) ? v : null;
  }

  function fmt(v) { return String(Number(v.toPrecision(4))); }

  function chart(run) {
    var ms = run.measurements || [];
    var values = ms.map(function (m) { return measuredValue(m.value); });
    var times = ms.map(function (m) { var t = Date.parse(m.time); return isNaN(t) ? null : t; });
    var stamps = times.filter(function (t) { return t !== null; });
    var distinct = stamps.filter(function (t, i) { return stamps.indexOf(t) === i; });
    var byTime = stamps.length === ms.length && distinct.length > 1;
    var numbers = values.filter(function (v) { return v !== null; });
    var low = numbers.length ? Math.min.apply(null, numbers) : 0;
    var high = numbers.length ? Math.max.apply(null, numbers) : 1;
    var t0 = byTime ? Math.min.apply(null, stamps) : 0;
    var span = byTime ? Math.max.apply(null, stamps) - t0 : 1;
    var innerW = CHART_W - CHART_LEFT - CHART_PAD, innerH = CHART_H - 2 * CHART_PAD;
    var node = svg("svg", {
      class: "chart", viewBox: "0 0 " + CHART_W + " " + CHART_H, width: CHART_W, height: CHART_H,
      role: "img",
      "aria-label": run.metric + ": " + ms.length + " measurements" +
        (numbers.length ? ", between " + fmt(low) + " and " + fmt(high) : ""),
    }, svg("rect", { class: "frame", x: 0.5, y: 0.5, width: CHART_W - 1, height: CHART_H - 1 }));
    var line = [];
    var markers = ms.map(function (m, i) {
      var frac = byTime ? (times[i] - t0) / span : (ms.length > 1 ? i / (ms.length - 1) : 0.5);
      var v = values[i];
      var yFrac = v === null ? 0 : (high - low < 1e-12 ? 0.5 : (v - low) / (high - low));
      var x = Math.round((CHART_LEFT + frac * innerW) * 10) / 10;
      var y = Math.round((CHART_PAD + (1 - yFrac) * innerH) * 10) / 10;
      if (v !== null) line.push(x + "," + y);
      var label = (m.time || "?") + ": " + (m.value || "no value") + " (" + (m.phase || "?") + ")" +
        (m.message ? " - " + m.message : "");
      return svg("path", {
        class: "marker marker-" + statusClass(m.phase),
        d: markerPath(MARKERS[m.phase] || "circle", x, y),
      }, svg("title", {}, label));
    });
    if (line.length) node.appendChild(svg("polyline", { class: "line", points: line.join(" ") }));
    markers.forEach(function (m) { node.appendChild(m); });
    if (numbers.length) {
      node.appendChild(svg("text", { class: "axis", x: 3, y: 10 }, fmt(high)));
      node.appendChild(svg("text", { class: "axis", x: 3, y: CHART_H - 3 }, fmt(low)));
    }
    return node;
  }

  function analysisRun(run) {
    return el("figure", { class: "analysis-run", "data-metric": run.metric, "data-step": run.step },
      el("figcaption", {}, "step " + (run.step + 1) + " · ", el("strong", {}, run.metric), " ",
        badge("run", run.phase), " ",
        el("span", { class: "muted" }, run.successful + " successful, " + run.failed + " failed, " +
          run.inconclusive + " inconclusive, " + run.errors + " errors")),
      chart(run),
      run.message ? el("p", { class: "muted run-message" }, run.message) : null);
  }

  function rolloutForm(app, r, action, label, confirmText, allowed, full) {
    var path = encodeURIComponent(app.namespace) + "/" + encodeURIComponent(app.name) +
      "/rollouts/" + encodeURIComponent(r.name) + "/" + action;
    return el("form", {
      method: "post",
      action: "/apps/" + path,
      "data-api": "/api/v1/applications/" + path,
      "data-confirm": confirmText,
    }, hidden("csrf_token", csrfToken()),
    full ? hidden("full", "true") : null,
    el("button", { type: "submit", "data-action": action + (full ? "-full" : ""), disabled: !allowed },
      label));
  }

  // server time minus browser time, so a pause counts down by the server's clock
  var clockOffset = 0;

  function setServerTime(text) {
    var t = Date.parse(text || "");
    if (!isNaN(t)) clockOffset = t - Date.now();
  }

  function remaining(until) {
    var end = Date.parse(until || "");
    if (isNaN(end)) return "";
    var s = Math.max(0, Math.ceil((end - (Date.now() + clockOffset)) / 1000));
    function two(n) { return (n < 10 ? "0" : "") + n; }
    if (s >= 3600) return Math.floor(s / 3600) + "h " + two(Math.floor((s % 3600) / 60)) + "m";
    if (s >= 60) return Math.floor(s / 60) + "m " + two(s % 60) + "s";
    return s + "s";
  }

  function tickCountdowns() {
    document.querySelectorAll(".countdown[data-until]").forEach(function (node) {
      var text = remaining(node.getAttribute("data-until"));
      if (node.textContent !== text) node.textContent = text;
    });
  }

  function rolloutPanel(app, r, canAct) {
    var nl = newLabel(r);
    var what = "rollout " + r.name + " of " + app.namespace + "/" + app.name;
    var w = r.weight || { stable: 100, canary: 0, target: null };
    var pods = r.replicas ? el("span", { class: "muted pods" }, r.readyCanaryReplicas + " " + nl +
      " + " + r.readyStableReplicas + " stable pods ready of " + r.replicas) : null;
    var steps = null;
    if ((r.steps || []).length) {
      steps = el.apply(null, ["ol", { class: "steps" }].concat(r.steps.map(function (s) {
        return el("li", { class: "step step-" + s.state,
          "aria-current": s.state === "current" ? "step" : null }, s.text);
      })));
    }
    var analysis = null;
    if ((r.analysisRuns || []).length) {
      analysis = el.apply(null, ["div", { class: "analysis" }, el("h4", {}, "Analysis")]
        .concat(r.analysisRuns.map(analysisRun)));
    }
    var actions = null;
    if (canAct) {
      var a = r.actions || {};
      actions = el("div", { class: "rollout-actions" },
        rolloutForm(app, r, "promote", "Promote", "Promote " + what + " past its current step?",
          a.promote, false),
        rolloutForm(app, r, "promote", "Promote full", "Promote " + what +
          " in full, skipping all remaining steps and analyses?", a.promoteFull, true),
        rolloutForm(app, r, "abort", "Abort", "Abort " + what +
          "? Traffic goes back to stable at once.", a.abort, false),
        rolloutForm(app, r, "retry", "Retry", "Retry the aborted revision of " + what + "?",
          a.retry, false));
    }
    return el("article", { class: "rollout", "data-rollout": r.name },
      el("h3", {}, el("span", { class: "kind" }, "Rollout"), " ",
        el("span", { class: "name" }, r.name), " ", badge("rollout", r.phase), " ",
        el("span", { class: "muted" }, r.strategy === "blueGreen" ? "blue-green" : r.strategy,
          r.gitRevisionShort ? " · Git " : "",
          r.gitRevisionShort ? el("code", {}, r.gitRevisionShort) : null)),
      r.error ? el("p", { class: "flash flash-error rollout-error" }, r.error) : null,
      el("p", { class: "rollout-message" }, r.message),
      el("p", { class: "rollout-step" }, r.stepText),
      el("div", { class: "weight" }, weightBar(r),
        el("p", { class: "weight-text" },
          el("span", { class: "weight-stable" }, "stable " + w.stable + " %"), " · ",
          el("span", { class: "weight-canary" }, nl + " " + w.canary + " %"), " ",
          w.target !== null && w.target !== undefined
            ? el("span", { class: "muted" }, "(step target " + w.target + " %)") : null, " ",
          pods)),
      r.pauseUntil ? el("p", { class: "pause" }, "Pause ends in ",
        el("strong", { class: "countdown", "data-until": r.pauseUntil }, remaining(r.pauseUntil)),
        " ", el("span", { class: "muted" }, "(" + when(r.pauseUntil) + ")")) : null,
      steps, analysis, actions);
  }

  var rolloutsStarted = false;

  function startRollouts() {
    if (rolloutsStarted) return;
    rolloutsStarted = true;
    var section = document.getElementById("rollouts-panel");
    var target = document.getElementById("rollouts");
    if (!section || !target) return;
    setServerTime(section.getAttribute("data-server-time"));
    var app = {
      namespace: decodeURIComponent(section.getAttribute("data-api").split("/")[4]),
      name: decodeURIComponent(section.getAttribute("data-api").split("/")[5]),
    };
    var canAct = body.getAttribute("data-can-act") === "1";
    var last = null;
    window.gitsyncRolloutPoll = poll(section.getAttribute("data-api"), function (data) {
      setServerTime(data.serverTime);
      var list = data.rollouts || [];
      var key = JSON.stringify(list);
      if (key !== last) {
        target.replaceChildren.apply(target, list.map(function (r) {
          return rolloutPanel(app, r, canAct);
        }));
        section.hidden = !list.length;
      }
      last = key;
      target.setAttribute("data-updated", data.serverTime || "");
    });
    window.gitsyncRolloutPoll.now();
    setInterval(tickCountdowns, 1000);
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
    var full = form.querySelector('input[name="full"]');
    if (full) payload.full = full.value === "true";
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
      if (window.gitsyncRolloutPoll) window.gitsyncRolloutPoll.now();
    });
  });

  var page = body.getAttribute("data-page");
  if (page === "apps") startList();
  if (page === "app") startApp();
})();
