// Drafts (README): the form goes to data-draft; offline, the page stays; idle, it closes.
(function () {
  "use strict";
  var form = document.querySelector("form[data-draft]");
  var note = document.querySelector("[data-offline]");
  var meta = document.querySelector('meta[http-equiv="refresh"]');
  var refresh = meta && meta.content.split(";url=");
  var pause = 0, idle = 0, dirty = false, leaving = false;
  var row = location.hash && document.getElementById(location.hash.slice(1));
  if (row) {  // a new row's #anchor: focused, then off the address
    row.focus();
    history.replaceState(null, "", location.href.split("#")[0]);
  }
  if (!form || !window.fetch) return;

  function close() {
    leaving = true;
    location.replace(refresh[1]);
  }

  function countdown(seconds) {
    clearTimeout(idle);
    if (refresh) idle = setTimeout(function () { send(true); close(); }, seconds * 1000);
  }

  function send(keepalive) {
    clearTimeout(pause);
    if (!dirty || leaving) return false;
    dirty = false;
    fetch(form.dataset.draft, {
      method: "POST",
      body: new URLSearchParams(new FormData(form)),
      credentials: "same-origin",
      keepalive: keepalive
    }).then(function (r) {
      if (r.status == 401 && refresh) close();
      else if (!r.ok) dirty = true;
      else return r.json().then(function (d) { countdown(d.idle_seconds); });
    }, function () { dirty = true; });
    return true;
  }

  function changed() {
    dirty = true;
    clearTimeout(pause);
    pause = setTimeout(send, +(form.dataset.wait || 1500));
  }

  form.addEventListener("input", changed);
  form.addEventListener("change", changed);
  form.addEventListener("submit", function (event) {
    var text = note && note.dataset.offline;
    if (navigator.onLine || !note) {
      leaving = true;
      clearTimeout(pause);
    } else {  // not the browser's error page; said again (a no-break space) if tapped again
      event.preventDefault();
      note.textContent = note.textContent == text ? text + "\u00a0" : text;
    }
  });
  addEventListener("beforeunload", function () {  // a reload asks for the page after:
    if (send(true)) for (var end = Date.now() + 300; Date.now() < end;);  // draft first
  });
  addEventListener("online", function () { send(); });
  document.addEventListener("visibilitychange", function () {  // hidden, or left
    if (document.hidden) send(true);
  });
  if (!refresh) return;
  // The meta refresh ends after "load", unless a tap on Next came first (a busy phone).
  countdown(parseInt(refresh[0], 10));
  addEventListener("load", function () {
    setTimeout(function () { if (!leaving) window.stop(); }, 0);
  });
})();
