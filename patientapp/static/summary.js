// Summary page helpers: open the print dialog on the print view, and copy the plain
// text for the medical record (reported to the server so the copy is audited).
(function () {
  "use strict";
  if (document.querySelector("[data-autoprint]")) {
    window.addEventListener("load", function () { window.print(); });
  }
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });
  var button = document.querySelector("[data-copy]");
  if (!button || !navigator.clipboard) return;
  button.hidden = false;
  button.addEventListener("click", function () {
    var text = document.getElementById(button.getAttribute("data-copy")).value;
    navigator.clipboard.writeText(text).then(function () {
      button.textContent = button.getAttribute("data-copied");
      var body = new FormData();
      body.append("csrf_token", button.getAttribute("data-csrf"));
      fetch(button.getAttribute("data-report"), { method: "POST", body: body, credentials: "same-origin" });
    });
  });
})();
