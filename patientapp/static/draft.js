// Keeps what the patient types on a step: after a pause, and when the page is hidden or
// left, the form goes to the server as a draft (over POST with its CSRF token, never in
// the address or browser storage). The page closes when the patient session would end,
// counted from the last draft taken (the meta refresh counts from when it opened).
// Without this file everything works as before.
(function () {
  "use strict";
  var form = document.querySelector("form[data-draft]");
  if (!form || !window.fetch || !window.URLSearchParams || !window.FormData) return;
  var url = form.getAttribute("data-draft");
  var meta = document.querySelector('meta[http-equiv="refresh"]');
  var refresh = meta ? meta.getAttribute("content").split(";url=") : null;
  var pause = 0, idle = 0, dirty = false, leaving = false;

  function close() {
    leaving = true;
    location.replace(refresh[1]);
  }

  function countdown(seconds) {
    if (!refresh) return;
    clearTimeout(idle);
    idle = setTimeout(function () {
      if (dirty) send(false); else close();
    }, seconds * 1000);
  }

  function send(keepalive) {
    clearTimeout(pause);
    if (!dirty || leaving) return;
    dirty = false;
    fetch(url, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      keepalive: keepalive
    }).then(function (response) {
      if (response.status === 401 && refresh) { close(); return; }
      if (!response.ok) { dirty = true; return; }
      return response.json().then(function (data) { countdown(data.idle_seconds); });
    }, function () { dirty = true; });
  }

  function changed() {
    dirty = true;
    clearTimeout(pause);
    pause = setTimeout(function () { send(false); }, 1500);
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", function () { leaving = true; clearTimeout(pause); });
  addEventListener("pagehide", function () { send(true); });
  document.addEventListener("visibilitychange", function () {
    if (document.visibilityState === "hidden") send(true);
  });
  if (refresh) {
    // The meta refresh would close the page mid-sentence; this timer restarts with each
    // draft. Stopping before "load" leaves the page loading; after a tap on Next (a busy
    // phone may run it first), it would cancel the next page, which ends the refresh.
    countdown(parseInt(refresh[0], 10));
    addEventListener("load", function () {
      setTimeout(function () { if (!leaving) window.stop(); }, 0);
    });
  }
})();

// A new row's #anchor: focused, then off the address (or later screens keep it).
(function () {
  var f = location.hash && document.getElementById(location.hash.slice(1));
  if (!f || !history.replaceState) return;
  f.focus();
  history.replaceState(null, "", location.pathname + location.search);
})();
