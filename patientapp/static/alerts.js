// Every staff page, while a safety alert is open: the banner under the menu, "(n)" at the
// start of the tab's title and a red badge as its icon, kept current without a reload by
// polling /staff/alerts.json (counts only; polling does not count as activity, so the
// idle timeout still signs out an unattended computer). When the count rises, or the
// marker of the newest open alert moves on (a new alert while another was acknowledged
// elsewhere, the count unchanged): a short tone if Settings turns it on (Web Audio, no
// file), and a desktop notification if this person allowed them. Signed out (the idle
// timeout), the page says so where nobody can miss it: the bar turns red with the words
// and a sign-in link, the title starts with "Signed out: alerts not shown", the icon is a
// red "!", the tone plays once, and the board hides what is no longer current (board.js,
// told by a "staff-signed-out" event). Without script the page shows what the server
// rendered.
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
  var newest = parseInt(root.getAttribute("data-newest"), 10) || 0; // its newest alert
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
  var told = { open: 0, newest: 0, at: 0 }; // the last rise another tab of this browser signalled
  var toldOut = 0; // when another tab of this browser last played the signed-out tone
  if (channel) {
    channel.onmessage = function (event) {
      var data = event.data || {};
      if (data.signedOut) toldOut = data.signedOut;
      else if (typeof data.open === "number") told = data;
    };
  }

  function arrived(open, marker) {
    var recent = Date.now() - told.at < 2 * every + 2000;
    if (recent && told.open >= open && (told.newest || 0) >= marker) return;
    told = { open: open, newest: marker, at: Date.now() };
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

  // Signed out: nothing this page shows is current any more, and no alert will reach it.
  var out = false;
  function signedOut() {
    stopped = true;
    window.clearTimeout(timer);
    if (out) return;
    out = true;
    var words = root.getAttribute("data-signed-out-title");
    document.title = words + " · " + document.title.replace(PREFIX, "");
    if (icon) icon.setAttribute("href", "data:image/svg+xml," + encodeURIComponent(badge.replace("%n", "!")));
    setText(text, words);
    setText(escalatedText, "");
    escalatedText.hidden = true;
    var board = document.getElementById("alert-bar-board");
    if (board) board.hidden = true;
    var signIn = document.getElementById("alert-bar-signin");
    if (signIn) {
      signIn.setAttribute("href", signIn.getAttribute("href").split("?")[0] +
        "?next=" + encodeURIComponent(window.location.pathname + window.location.search));
      signIn.hidden = false;
    }
    bar.classList.add("escalated", "signed-out");
    bar.hidden = false;
    if (offer) offer.hidden = true;
    // The board says the longer words itself, beside what it hides.
    if (!document.getElementById("signed-out")) {
      var note = document.getElementById("alert-signed-out");
      note.textContent = root.getAttribute("data-signed-out");
      note.hidden = false;
    }
    // The tone once, across this person's tabs (each of them is signed out at once).
    if (sound && !(Date.now() - toldOut < 2 * every + 2000)) {
      toldOut = Date.now();
      if (channel) channel.postMessage({ signedOut: toldOut });
      tone();
    }
    document.dispatchEvent(new CustomEvent("staff-signed-out"));
  }
  // The board's own poll may hear it first.
  document.addEventListener("staff-signed-out", signedOut);

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
        var marker = data.newest || 0;
        if (data.open > known || marker > newest) arrived(data.open, marker);
        known = data.open;
        newest = marker; // lower once the newest is acknowledged; higher again if reopened
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
