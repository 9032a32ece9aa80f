// Keeps the staff board current without a reload: polls the JSON endpoint, shows new
// safety alerts at the top and updates the day's alert figures and each visit's status.
// Without script, the page reloads itself every 30 seconds instead (a <noscript> refresh).
// Signed out (the idle timeout: polling is not activity), nothing here is current any
// more: the alerts, the day's figures and the visits ([data-live]) are hidden rather than
// left looking live, and the page says why; alerts.js turns the bar and the title red
// (they tell each other with a "staff-signed-out" event, whichever poll hears it first).
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) return;
  var url = board.getAttribute("data-poll");
  var list = document.getElementById("alert-list");
  var region = document.getElementById("alerts");
  var csrf = document.querySelector("input[name=csrf_token]");

  function alertItem(alert, template) {
    var li = document.createElement("li");
    li.className = "alert";
    li.setAttribute("data-visit", alert.visit_id);
    var p = document.createElement("p");
    var strong = document.createElement("strong");
    strong.textContent = alert.patient_ref;
    p.appendChild(strong);
    p.appendChild(document.createTextNode(" — " + template.replace("%time", alert.at).replace("%day", alert.day)));
    li.appendChild(p);
    var form = document.createElement("form");
    form.method = "post"; form.className = "ack-form";
    form.action = board.getAttribute("data-ack").replace("/0/", "/" + alert.visit_id + "/");
    var token = document.createElement("input");
    token.type = "hidden"; token.name = "csrf_token"; token.value = csrf ? csrf.value : "";
    var back = document.createElement("input");
    back.type = "hidden"; back.name = "return_to"; back.value = "board";
    var raised = document.createElement("input");  // this alert, not one opened again since
    raised.type = "hidden"; raised.name = "raised"; raised.value = alert.raised;
    var label = document.createElement("label");
    label.htmlFor = "note-" + alert.visit_id;
    label.textContent = board.getAttribute("data-note-label");
    var note = document.createElement("input");
    note.type = "text"; note.name = "note"; note.id = label.htmlFor;
    note.maxLength = 200; note.autocomplete = "off";
    var button = document.createElement("button");
    button.type = "submit"; button.className = "danger";
    button.textContent = board.getAttribute("data-ack-label");
    [token, back, raised, label, note, button].forEach(function (el) { form.appendChild(el); });
    li.appendChild(form);
    return li;
  }

  // "Alert acknowledged by NAME" and the note, as text (staff words, never answers).
  function showAcknowledged(row, visit) {
    var cell = row.querySelector("[data-field=status]");
    var line = cell.querySelector("[data-field=ack]");
    if (!visit.acknowledged) return;
    if (!line) {
      cell.appendChild(document.createElement("br"));
      line = document.createElement("span");
      line.className = "muted ack"; line.setAttribute("data-field", "ack");
      cell.appendChild(line);
    }
    line.textContent = board.getAttribute("data-acked").replace("%name", function () { return visit.acknowledged_by; });
    if (visit.acknowledged_note) {
      var note = document.createElement("span");
      note.className = "ack-note"; note.dir = "auto";
      note.textContent = board.getAttribute("data-acked-note").replace("%note", function () { return visit.acknowledged_note; });
      line.appendChild(document.createTextNode(" "));
      line.appendChild(note);
    }
  }

  // The day's line of alert figures, as the server words it (inside the report's link
  // for those who may read the report).
  function showFigures(text) {
    var line = document.querySelector(".alert-figures");
    if (!line || typeof text !== "string") return;
    var target = line.querySelector("a") || line;
    if (target.textContent !== text) target.textContent = text;
  }

  function render(data) {
    var template = board.getAttribute("data-alert-text");
    var seen = {};
    var announcer = document.getElementById("announcer");
    data.alerts.forEach(function (alert) {
      seen[alert.visit_id] = true;
      if (!list.querySelector("li[data-visit='" + alert.visit_id + "']")) {
        list.insertBefore(alertItem(alert, template), list.firstChild);
        // The region was hidden until now, so screen readers hear it from here instead.
        announcer.textContent = announcer.getAttribute("data-text").replace("%ref", alert.patient_ref);
      }
    });
    Array.prototype.forEach.call(list.querySelectorAll("li[data-visit]"), function (li) {
      if (!seen[li.getAttribute("data-visit")]) li.remove();
    });
    region.hidden = data.alerts.length === 0;
    showFigures(data.figures);
    data.visits.forEach(function (visit) {
      var row = board.querySelector("tr[data-visit='" + visit.id + "']");
      // A visit created elsewhere: reload quietly (auto=1 does not count as activity).
      if (!row) { window.location.replace(board.getAttribute("data-auto")); return; }
      var status = row.querySelector("[data-field=status] span");
      status.textContent = visit.status_label;
      status.className = "status-" + visit.status;
      row.querySelector("[data-field=progress]").textContent = visit.progress ? "(" + visit.progress + ")" : "";
      row.querySelector("[data-field=minutes]").textContent = visit.minutes || "";
      var delivery = row.querySelector("[data-field=delivery]");
      if (delivery) delivery.textContent = visit.delivery || "";
      row.querySelector("[data-field=language]").textContent = visit.language || "";
      row.classList.toggle("has-alert", visit.alert_open);
      showAcknowledged(row, visit);
      var cell = row.querySelector("[data-field=patient]");
      if (visit.alert && !cell.querySelector(".badge")) {
        var badge = document.createElement("span");
        badge.className = "badge danger";
        badge.textContent = board.getAttribute("data-alert-label");
        cell.appendChild(document.createTextNode(" "));
        cell.appendChild(badge);
      }
    });
  }

  var timer = null;
  var out = false;

  function signedOut() {
    window.clearTimeout(timer);
    if (out) return;
    out = true;
    Array.prototype.forEach.call(board.querySelectorAll("[data-live], .alert-figures"), function (part) {
      part.hidden = true;
    });
    var note = document.getElementById("signed-out");
    note.textContent = board.getAttribute("data-signed-out");
    note.hidden = false;
    document.dispatchEvent(new CustomEvent("staff-signed-out"));
  }
  document.addEventListener("staff-signed-out", signedOut);

  function later(ms) {
    window.clearTimeout(timer);
    if (!out) timer = window.setTimeout(poll, ms);
  }

  function poll() {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { signedOut(); return null; }
        if (!response.ok) { later(10000); return null; } // a server error: ask again
        return response.json();
      })
      .then(function (data) {
        if (data && !out) { render(data); later(5000); }
      })
      .catch(function () { later(10000); });
  }
  later(5000);
})();
