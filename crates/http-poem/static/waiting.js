// ConsultPay — the waiting room follows the access check by itself: a countdown to
// the start, "Join" once the practitioner starts, and back to the pay page when the
// consultation is no longer offered. Without JavaScript the page refreshes itself.
(function () {
  "use strict";
  var room = document.getElementById("waiting-room");
  if (!room) return;
  var token = room.getAttribute("data-token");
  // The server's clock, not the device's: a phone set a few minutes off (or the
  // sandbox's test clock) counts down to the same start as the server.
  var skew = Date.parse(room.getAttribute("data-now")) - Date.now();
  var startsAt = Date.parse(room.getAttribute("data-starts-at")) - skew;
  var countdown = document.getElementById("countdown");
  var value = document.getElementById("countdown-value");
  var pad = function (n) { return (n < 10 ? "0" : "") + n; };
  var tick = function () {
    var left = Math.floor((startsAt - Date.now()) / 1000);
    if (left <= 0) { countdown.hidden = true; return; }
    var h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
    value.textContent = (h > 0 ? h + " h " : "") + pad(m) + " min " + pad(s) + " s";
    countdown.hidden = false;
  };
  var show = function (started) {
    document.getElementById("waiting").hidden = started;
    document.getElementById("ready").hidden = !started;
    room.setAttribute("data-started", started ? "true" : "false");
  };
  var poll = function () {
    fetch("/api/v1/pay/" + encodeURIComponent(token) + "/access", { credentials: "omit", cache: "no-store" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (a) {
        if (!a) return;
        if (!a.waiting_room) { window.location.replace("/pay/" + encodeURIComponent(token)); return; }
        show(a.started);
      })
      .catch(function () {});
  };
  tick();
  setInterval(tick, 1000);
  setInterval(poll, 3000);
})();
