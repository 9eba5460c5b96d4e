/* fieldmon console: SLA countdowns that tick in the browser, and the live incident board
   (server-sent events from /events; on a change the table fragment is fetched again).
   Loaded as a file because the Content-Security-Policy allows no inline script. */
(function () {
  "use strict";

  function duration(ms) {
    var minutes = Math.floor(Math.abs(ms) / 60000);
    var days = Math.floor(minutes / 1440);
    var rest = minutes % 1440;
    var mm = String(rest % 60);
    var text = Math.floor(rest / 60) + "h " + (mm.length < 2 ? "0" + mm : mm) + "m";
    return (ms < 0 ? "-" : "") + (days ? days + "d " + text : text);
  }

  function arm(root) {
    var now = Date.now();
    var spans = root.querySelectorAll(".sla[data-left-ms]");
    for (var i = 0; i < spans.length; i++) {
      spans[i].setAttribute("data-t0", String(now));
    }
  }

  function tick() {
    var now = Date.now();
    var spans = document.querySelectorAll(".sla[data-left-ms]");
    for (var i = 0; i < spans.length; i++) {
      var el = spans[i];
      if (el.getAttribute("data-running") !== "1") { continue; }
      var left = Number(el.getAttribute("data-left-ms")) -
        (now - Number(el.getAttribute("data-t0") || now));
      var total = Number(el.getAttribute("data-total-ms"));
      var warn = Number(el.getAttribute("data-warn"));
      var used = total > 0 ? 1 - left / total : 1;
      var tone = left < 0 ? "red" : (used >= warn ? "amber" : "ok");
      el.textContent = duration(left);
      el.classList.remove("ok", "amber", "red");
      el.classList.add(tone);
    }
  }

  function live(box) {
    if (!window.EventSource) { return; }
    var rowsUrl = box.getAttribute("data-rows");
    var badge = document.getElementById("live-state");
    var busy = false, again = false;

    function mark() {
      var rows = box.querySelector(".board-rows");
      return rows ? rows.getAttribute("data-mark") : "";
    }

    function refresh() {
      if (busy) { again = true; return; }
      busy = true;
      fetch(rowsUrl, { credentials: "same-origin", cache: "no-store" })
        .then(function (resp) {
          if (!resp.ok) { throw new Error("HTTP " + resp.status); }
          return resp.text();
        })
        .then(function (html) {
          box.innerHTML = html;
          arm(box);
          tick();
        })
        .catch(function () { /* the next event tries again */ })
        .then(function () {
          busy = false;
          if (again) { again = false; refresh(); }
        });
    }

    var source = new EventSource(box.getAttribute("data-events"));
    source.addEventListener("change", function (ev) {
      if (ev.data !== mark()) { refresh(); }
    });
    source.addEventListener("open", function () { if (badge) { badge.hidden = false; } });
    source.addEventListener("error", function () { if (badge) { badge.hidden = true; } });
    window.addEventListener("pagehide", function () { source.close(); });
  }

  document.addEventListener("DOMContentLoaded", function () {
    arm(document);
    tick();
    window.setInterval(tick, 1000);
    var box = document.getElementById("board-live");
    if (box) { live(box); }
  });
})();
