// Kabootar's charts page: draw each chart with uPlot (vendor/uplot) over the table the
// server rendered, and refresh charts and tables from /ops/api/charts. Without this file
// (or without JavaScript) the tables alone carry the same figures.
(function () {
  "use strict";
  var root = document.getElementById("charts");
  if (!root || !window.fetch || !window.uPlot || !window.kabootarPoll) return;
  var HEIGHT = 220;
  var COLORS = ["#1a55a0", "#c2571a", "#2e7d32", "#8e24aa", "#b3261e", "#00838f", "#6d4c41", "#546e7a"];
  var plots = {};
  root.plots = plots; // each chart's uPlot, by chart id (its .data is what it draws)

  // As gateway/ops/charts.py's cell(): a number as JS writes it, "—" for nothing measured.
  function cell(v) { return v === null || v === undefined ? "\u2014" : String(v); }

  function options(chart, width) {
    return {
      width: width,
      height: HEIGHT,
      tzDate: function (ts) { return uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"); },
      scales: { y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [{}, { label: chart.unit, size: 60 }],
      series: [{ label: "UTC" }].concat(chart.series.map(function (s, i) {
        return {
          label: s.label,
          stroke: COLORS[i % COLORS.length],
          width: s.limit ? 1 : 1.5,
          dash: s.limit ? [6, 4] : undefined,
          spanGaps: false
        };
      }))
    };
  }

  function fillTable(section, data, chart) {
    var tbody = section.querySelector("details tbody"); // (uPlot's legend is a table too)
    var rows = [];
    for (var i = data.labels.length - 1; i >= 0; i--) {
      var tr = document.createElement("tr"), th = document.createElement("th");
      th.scope = "row";
      th.textContent = data.labels[i];
      tr.appendChild(th);
      chart.series.forEach(function (s) {
        var td = document.createElement("td");
        td.className = "n";
        td.textContent = cell(s.values[i]);
        tr.appendChild(td);
      });
      rows.push(tr);
    }
    tbody.replaceChildren.apply(tbody, rows);
  }

  function draw(data) {
    data.charts.forEach(function (chart) {
      var section = document.getElementById("chart-" + chart.id);
      if (!section) return;
      var el = section.querySelector("[data-chart]");
      var columns = [data.t].concat(chart.series.map(function (s) { return s.values; }));
      if (plots[chart.id]) {
        plots[chart.id].setData(columns);
      } else {
        plots[chart.id] = new uPlot(options(chart, el.clientWidth), columns, el);
        section.querySelector("details").open = false; // the chart now shows it
      }
      fillTable(section, data, chart);
    });
    return data.refresh_seconds; // the server says when the next figures are due
  }

  window.addEventListener("resize", function () {
    Object.keys(plots).forEach(function (id) {
      var el = document.querySelector('[data-chart="' + id + '"]');
      plots[id].setSize({ width: el.clientWidth, height: HEIGHT });
    });
  });
  window.kabootarPoll(root.dataset.url, root.dataset.loginUrl, 60, draw)();
})();
