// Keeps the dev phone's conversation current: polls the JSON every second and redraws.
// The page works without this; it only saves pressing reload.
(function () {
  "use strict";
  var list = document.getElementById("conversation");
  var numberInput = document.getElementById("number");
  if (!list || !numberInput || !window.fetch) return;

  function item(m) {
    var li = document.createElement("li");
    li.className = m.direction;
    li.dir = "auto";
    li.appendChild(document.createTextNode(m.body));
    var small = document.createElement("small");
    small.textContent = (m.direction === "in" ? m.status : "sent · " + m.status) +
      (m.channel && list.dataset.channels > 1 ? " · " + m.channel : "");
    li.appendChild(small);
    return li;
  }

  var last = "";
  function refresh() {
    var url = list.dataset.source + "?number=" + encodeURIComponent(numberInput.value);
    fetch(url, { cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
      .then(function (data) {
        var text = JSON.stringify(data.messages);
        if (text === last) return;
        last = text;
        list.replaceChildren.apply(list, data.messages.map(item));
      })
      .catch(function () { /* the next tick tries again */ });
  }
  setInterval(refresh, 1000);
})();
