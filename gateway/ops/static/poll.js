// The refresh loop the console's pages share (ops.js, charts.js): GET `url` as JSON with
// the operator's session, hand it to `show`, and again `seconds` later (or as many as
// `show` returns). A 401 (the session ended) goes to the login page; any other failure
// marks the page's "updated" line stale and tries again at the next turn.
window.kabootarPoll = function (url, loginUrl, seconds, show) {
  "use strict";
  function status(text, stale) {
    var el = document.getElementById("updated");
    if (!el) return;
    el.textContent = text;
    el.classList.toggle("stale", stale);
  }

  function tick() {
    var wait = seconds;
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (r) {
        if (r.status === 401) {
          window.location.href = loginUrl;
          throw new Error("logged out");
        }
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(function (data) {
        wait = show(data) || seconds;
        status("updated " + new Date(data.at * 1000).toLocaleTimeString(), false);
      })
      .catch(function (e) { status("cannot update: " + e.message, true); })
      .then(function () { window.setTimeout(tick, wait * 1000); });
  }
  return tick;
};
