// Kabootar's operator console: refresh the figures every 2 s from /ops/api/health.
// The page is complete without this file; it only keeps it current (see console.html
// for the data-* attributes it reads). Formats match gateway/ops/present.py.
(function () {
  "use strict";
  var root = document.getElementById("ops");
  if (!root || !window.fetch || !window.kabootarPoll) return;
  var INTERVAL_MS = 2000;
  var now = 0;

  function dur(s) {
    if (s === null || s === undefined) return "\u2014";
    if (s <= 0) return "0 s";
    if (s < 1) return Math.round(s * 1000) + " ms";
    if (s < 60) return s.toFixed(1) + " s";
    var r = Math.round(s);
    if (r < 3600) return Math.floor(r / 60) + " min " + (r % 60) + " s";
    return Math.floor(r / 3600) + " h " + Math.floor((r % 3600) / 60) + " min";
  }
  var FORMATS = {
    int: function (v) { return v === null || v === undefined ? "\u2014" : Math.round(v).toLocaleString("en-US"); },
    rate: function (v) { return v === null || v === undefined ? "\u2014" : (v < 10 ? v.toFixed(2) : v.toFixed(1)); },
    dur: dur,
    ago: function (v) { return v === null || v === undefined ? "\u2014" : dur(Math.max(0, now - v)) + " ago"; },
    text: function (v) { return v === null || v === undefined ? "" : String(v); },
    handle: function (v) { return v ? "@" + v : "(no handle: forgotten)"; }
  };

  function pick(obj, path) {
    return path.split(".").reduce(function (o, k) { return o === null || o === undefined ? undefined : o[k]; }, obj);
  }
  function show(el, spec, data) {
    var parts = spec.split("|");
    var text = (FORMATS[parts[1] || "text"] || FORMATS.text)(pick(data, parts[0]));
    if (el.textContent !== text) el.textContent = text;
  }
  function sparkPoints(values, width, height) {
    if (!values || !values.length) return "";
    var top = 0;
    values.forEach(function (v) { if (v !== null && v > top) top = v; });
    top = top || 1;
    var step = width / Math.max(1, values.length - 1);
    return values.map(function (v, i) {
      return (i * step).toFixed(1) + "," + (height - 1 - ((v || 0) / top) * (height - 2)).toFixed(1);
    }).join(" ");
  }

  function fill(tr, item) {
    tr.querySelectorAll("[data-f]").forEach(function (el) { show(el, el.dataset.f, item); });
    if (tr.dataset.off) tr.classList.toggle("off", !item[tr.dataset.off]);
  }
  function row(template, item) {
    var tr = template.content.firstElementChild.cloneNode(true);
    fill(tr, item);
    tr.querySelectorAll("form[data-action]").forEach(function (f) {
      f.action = f.dataset.action.replace("{id}", encodeURIComponent(item.id));
    });
    return tr;
  }
  function identity(item) {
    return item.id !== undefined ? String(item.id) : item.name !== undefined ? item.name : JSON.stringify(item);
  }
  function fillRows(tbody, data) {
    var items = pick(data, tbody.dataset.rows) || [];
    var ids = JSON.stringify(items.map(identity));
    var shown = tbody.querySelectorAll("tr:not(.empty)");
    if (tbody.dataset.ids === ids || (!tbody.dataset.ids && shown.length === items.length && items.length === 0)) {
      // The same rows: update their cells in place (a half-done click on a button survives).
      shown.forEach(function (tr, i) { fill(tr, items[i]); });
      return;
    }
    tbody.dataset.ids = ids;
    var template = document.getElementById(tbody.dataset.template);
    var rows = items.map(function (item) { return row(template, item); });
    if (!rows.length) {
      var tr = document.createElement("tr"), td = document.createElement("td");
      tr.className = "empty";
      td.colSpan = template.content.firstElementChild.children.length;
      td.textContent = tbody.dataset.empty || "";
      tr.appendChild(td);
      rows = [tr];
    }
    tbody.replaceChildren.apply(tbody, rows);
  }

  // A list item: a string, or an alert ({name, severity, since, summary}) as console.html draws it.
  function listItem(item) {
    var li = document.createElement("li");
    if (typeof item !== "object" || item === null) {
      li.textContent = String(item);
      return li;
    }
    li.dataset.severity = item.severity;
    li.textContent = item.summary + " ";
    var note = document.createElement("span");
    note.className = "since";
    note.textContent = item.name + (item.since ? ", since " + item.since.slice(11, 16) + " UTC" : "");
    li.appendChild(note);
    return li;
  }

  function render(data) {
    now = data.at;
    document.querySelectorAll("[data-k]").forEach(function (el) { show(el, el.dataset.k, data); });
    document.querySelectorAll("tbody[data-rows]").forEach(function (tbody) { fillRows(tbody, data); });
    document.querySelectorAll("svg[data-spark]").forEach(function (svg) {
      var box = svg.viewBox.baseVal;
      svg.querySelector("polyline").setAttribute("points", sparkPoints(pick(data, svg.dataset.spark), box.width, box.height));
    });
    document.querySelectorAll("[data-list]").forEach(function (ul) {
      var items = pick(data, ul.dataset.list) || [];
      ul.replaceChildren.apply(ul, items.map(listItem));
    });
    document.querySelectorAll("[data-alarm]").forEach(function (el) {
      el.classList.toggle("late", Boolean(pick(data, el.dataset.alarm)));
    });
    document.querySelectorAll("[data-show]").forEach(function (el) {
      var v = pick(data, el.dataset.show);
      el.hidden = !(Array.isArray(v) ? v.length : v);
    });
    if (data.csrf) {
      document.querySelectorAll('input[name="csrf_token"]').forEach(function (input) { input.value = data.csrf; });
    }
  }

  var tick = window.kabootarPoll(root.dataset.healthUrl, root.dataset.loginUrl, INTERVAL_MS / 1000, render);
  window.setTimeout(tick, INTERVAL_MS);
})();
