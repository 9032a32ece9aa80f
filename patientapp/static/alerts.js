// Every staff page, while a safety alert is open: the banner under the menu, "(n)" at the
// start of the tab's title and a red badge as its icon, kept current without a reload by
// polling /staff/alerts.json (counts only; polling does not count as activity, so the
// idle timeout still signs out an unattended computer). When the count rises: a short
// tone if Settings turns it on (Web Audio, no file), and a desktop notification if this
// person allowed them. Without script the page shows what the server rendered.
(function () {
  "use strict";
  var root = document.getElementById("staff-alerts");
  if (!root || !window.fetch) return;
  var bar = document.getElementById("alert-bar");
  var text = document.getElementById("alert-bar-text");
  var escalatedText = document.getElementById("alert-bar-escalated");
  var offer = document.getElementById("alert-notify");
  var icon = document.querySelector("link[rel=icon]");
  var url = root.getAttribute("data-poll");
  var every = parseInt(root.getAttribute("data-interval"), 10) || 2000;
  var badge = root.getAttribute("data-badge");
  var onBoard = root.hasAttribute("data-board");
  var sound = root.hasAttribute("data-sound");
  var known = parseInt(root.getAttribute("data-open"), 10) || 0; // what this page shows
  var PREFIX = /^\(\d+\) /;
  var timer = null;
  var stopped = false;

  // --- the banner, the title, the icon -------------------------------------------------

  function iconFor(open) {
    if (!open) return "data:,";
    return "data:image/svg+xml," + encodeURIComponent(badge.replace("%n", open < 10 ? String(open) : "9+"));
  }

  function setText(node, value) {
    if (node.textContent !== value) node.textContent = value; // the same words are not re-announced
  }

  function show(data) {
    var title = document.title.replace(PREFIX, "");
    document.title = (data.open ? "(" + data.open + ") " : "") + title;
    var href = iconFor(data.open);
    if (icon && icon.getAttribute("href") !== href) icon.setAttribute("href", href);
    if (data.open) setText(text, data.text);
    setText(escalatedText, data.escalated ? data.escalated_text : "");
    escalatedText.hidden = !data.escalated;
    bar.classList.toggle("escalated", data.escalated > 0);
    bar.hidden = !data.open;
    offerNotifications(data.open);
  }

  // --- a new alert: tone and notification, once across this person's open tabs ---------

  var channel = window.BroadcastChannel ? new BroadcastChannel("staff-alerts") : null;
  var told = { open: 0, at: 0 }; // the last rise another tab of this browser signalled
  if (channel) channel.onmessage = function (event) { told = event.data || told; };

  function arrived(open) {
    if (told.open >= open && Date.now() - told.at < 2 * every + 2000) return;
    told = { open: open, at: Date.now() };
    if (channel) channel.postMessage(told);
    if (sound) tone();
    notify();
  }

  var audio = null;
  function context() {
    var Context = window.AudioContext || window.webkitAudioContext;
    if (!audio && Context) audio = new Context();
    if (audio && audio.state === "suspended") audio.resume();
    return audio;
  }

  // Two short beeps, high then lower, about half a second in all.
  function tone() {
    try {
      var ctx = context();
      if (!ctx) return;
      var start = ctx.currentTime + 0.02;
      [880, 660].forEach(function (pitch, n) {
        var at = start + n * 0.25;
        var osc = ctx.createOscillator();
        var gain = ctx.createGain();
        osc.type = "sine";
        osc.frequency.value = pitch;
        gain.gain.setValueAtTime(0.0001, at);
        gain.gain.exponentialRampToValueAtTime(0.3, at + 0.02);
        gain.gain.exponentialRampToValueAtTime(0.0001, at + 0.2);
        osc.connect(gain);
        gain.connect(ctx.destination);
        osc.start(at);
        osc.stop(at + 0.22);
      });
    } catch (e) { /* no sound on this browser: the banner still shows */ }
  }

  // A browser lets a page make sound only once someone has used it: get ready at the
  // first click or key on the page.
  if (sound) {
    var unlock = function () {
      document.removeEventListener("pointerdown", unlock, true);
      document.removeEventListener("keydown", unlock, true);
      try { context(); } catch (e) { /* see tone() */ }
    };
    document.addEventListener("pointerdown", unlock, true);
    document.addEventListener("keydown", unlock, true);
  }

  var canAsk = "Notification" in window && typeof Notification.requestPermission === "function";

  function offerNotifications(open) {
    if (!offer) return;
    offer.hidden = !(canAsk && Notification.permission === "default" && (onBoard || open > 0));
  }

  function notify() {
    if (!canAsk || Notification.permission !== "granted") return;
    try {
      // Never who: the words are the same for every alert.
      var note = new Notification(root.getAttribute("data-notify-text"), { tag: "staff-safety-alert" });
      note.onclick = function () { window.focus(); note.close(); };
    } catch (e) { /* e.g. Android Chrome allows them only from a service worker */ }
  }

  if (offer) {
    offer.querySelector("button").addEventListener("click", function () {
      var done = function () { offerNotifications(known); };
      var asked = Notification.requestPermission(done); // older Safari: a callback
      if (asked && asked.then) asked.then(done, done);
    });
    offerNotifications(known);
  }

  // --- polling -------------------------------------------------------------------------

  function later(ms) {
    window.clearTimeout(timer);
    if (!stopped) timer = window.setTimeout(poll, ms);
  }

  function signedOut() {
    stopped = true;
    window.clearTimeout(timer);
    if (document.getElementById("signed-out")) return; // the board says it itself
    var note = document.getElementById("alert-signed-out");
    note.textContent = root.getAttribute("data-signed-out");
    note.hidden = false;
  }

  function poll() {
    fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" } })
      .then(function (response) {
        if (response.status === 401) { signedOut(); return null; }
        if (response.status === 403) { stopped = true; return null; } // second factor not set up yet
        return response.ok ? response.json() : null;
      })
      .then(function (data) {
        if (stopped) return;
        if (!data) { later(2 * every); return; }
        show(data);
        if (data.open > known) arrived(data.open);
        known = data.open;
        later(every);
      })
      .catch(function () { later(2 * every); });
  }

  // A tab brought back to the front (its timers may have been slowed) asks at once.
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "visible") later(0);
  });
  window.addEventListener("pageshow", function (event) { if (event.persisted) later(0); });
  later(every);
})();
