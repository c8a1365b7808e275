// ConsultPay — the little JavaScript the pages use; everything works without it.
(function () {
  "use strict";
  // Copy a pay link.
  document.querySelectorAll("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var input = document.getElementById(btn.getAttribute("data-copy"));
      if (!input) return;
      input.select();
      var done = function () { btn.textContent = btn.getAttribute("data-copied") || "OK"; };
      if (navigator.clipboard) { navigator.clipboard.writeText(input.value).then(done, done); }
      else { document.execCommand("copy"); done(); }
    });
  });
  // Live fee and net preview: the server computes and formats it.
  document.querySelectorAll("[data-fee-preview]").forEach(function (out) {
    var form = out.closest("form");
    var amount = form && form.querySelector("[data-fee-amount]");
    if (!amount) return;
    var timer;
    var update = function () {
      var params = new URLSearchParams();
      params.set("amount", amount.value);
      ["currency", "preset", "percent", "fixed", "max"].forEach(function (name) {
        var el = form.querySelector("[data-fee-" + name + "]");
        if (el) params.set(name, el.value);
        else if (out.dataset[name]) params.set(name, out.dataset[name]);
      });
      fetch("/dashboard/fee-preview?" + params.toString(), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : ""; })
        .then(function (text) { if (text) out.textContent = text; });
    };
    form.addEventListener("input", function () { clearTimeout(timer); timer = setTimeout(update, 150); });
    form.addEventListener("change", update);
  });
  // An amount above its maximum (the hold) is refused next to the field, before the
  // form is sent (the server refuses it too).
  document.querySelectorAll("[data-max-amount]").forEach(function (input) {
    var max = parseFloat(input.getAttribute("data-max-amount"));
    var note = document.getElementById(input.id + "-over") ||
      document.getElementById((input.form && input.form.id || "").replace("-form", "") + "-over");
    var check = function () {
      var typed = parseFloat(input.value.replace(/\s/g, "").replace(",", "."));
      var over = !isNaN(typed) && !isNaN(max) && typed > max;
      input.setCustomValidity(over ? input.getAttribute("data-over") : "");
      if (note) note.hidden = !over;
    };
    input.addEventListener("input", check);
    check();
  });
  // Scheduling: amount and service only apply to online payment.
  document.querySelectorAll("[data-online-only]").forEach(function (block) {
    var form = block.closest("form");
    var sync = function () {
      var online = form.querySelector("input[name=mode][value=online]");
      block.hidden = !(online && online.checked);
    };
    form.addEventListener("change", sync);
    sync();
  });
  // A choice that changes the rest of the form (a secretary's practitioner: their
  // services and default amount) reloads the page with it.
  document.querySelectorAll("[data-reload-with]").forEach(function (select) {
    select.addEventListener("change", function () {
      var param = select.getAttribute("data-reload-with");
      window.location.search = "?" + param + "=" + encodeURIComponent(select.value);
    });
  });
})();
