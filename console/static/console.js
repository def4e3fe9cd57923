// Live readiness preview: while the Enforced TLS form is edited, fetch the
// preview of the edited setting from the console and show it. Without
// JavaScript the form's Preview button does the same with a page load.
(function () {
  "use strict";
  var form = document.getElementById("tls-form");
  var out = document.getElementById("preview");
  if (!form || !out) { return; }
  var seq = 0;
  function update() {
    var q = new URLSearchParams();
    q.set("require_tls", form.require_tls.checked ? "true" : "false");
    q.set("require_valid_cert", form.require_valid_cert.checked ? "true" : "false");
    q.set("version", form.version.value);
    var mine = ++seq;
    fetch("/console/tls/preview?" + q.toString(), { credentials: "same-origin" })
      .then(function (r) { return r.text(); })
      .then(function (html) { if (mine === seq) { out.innerHTML = html; } })
      .catch(function () {});
  }
  form.addEventListener("change", update);
})();
