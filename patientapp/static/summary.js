// Summary page helpers: fit the page to one printed sheet, open the print dialog on the
// print view, and copy the plain text for the medical record (reported to the server so
// the copy is audited).
(function () {
  "use strict";

  // --- one printed sheet ---------------------------------------------------------------
  // The type is the largest from 11 pt down to 8 pt that keeps the page on one sheet
  // (data-print-pt). Quotes and medicine names ([data-fit]) print in full whenever the
  // page fits at 8 pt. Only when it would run onto a second sheet are they shortened,
  // longest first: the longest
  // length L that still fits is found by bisection, and every text longer than L is cut
  // at a word near L with a visible "(continued on screen)" marker. The screen always
  // shows the whole text (.fit-rest is hidden by print.css only). Measured with print.css
  // switched on for a moment, laid out at each paper's printable width and held to its
  // printable height, so the one sheet holds on both Letter and A4 (a page that fits A4's
  // narrower width within Letter's shorter height can still run 2 px onto a second
  // Letter sheet: its columns break otherwise); nothing paints in between. Used by
  // Ctrl+P on the summary page and by the print view alike.
  var MM = 96 / 25.4;
  var PAPERS = [ // printable width and height: the paper less print.css's @page margins
    { width: (215.9 - 2 * 9) * MM, height: (279.4 - 2 * 8) * MM }, // Letter
    { width: (210 - 2 * 9) * MM, height: (297 - 2 * 8) * MM } // A4
  ];
  var SLACK = 10; // px kept free for rounding between this layout and the printed one
  var SHORTEST = 24; // no text is cut below this many characters
  var SIZES = [11, 10.5, 10, 9.5, 9, 8.5, 8]; // pt: the largest that fits, before any cut

  var whole = new WeakMap(); // each text as first served, before any shortening

  function fitToOneSheet() {
    var article = document.querySelector("article.summary[data-fit-more]");
    var sheet = document.getElementById("print-css");
    var main = document.querySelector("main");
    if (!article || !sheet || !main) return;
    var marker = "\u2026 " + article.getAttribute("data-fit-more");
    var items = Array.prototype.slice.call(article.querySelectorAll("[data-fit]"));
    var texts = items.map(function (el) {
      if (!whole.has(el)) whole.set(el, Array.from(el.textContent));
      return whole.get(el);
    });
    var longest = texts.reduce(function (m, t) { return Math.max(m, t.length); }, 0);

    function show(cap) {
      var cut = 0;
      items.forEach(function (el, i) {
        var chars = texts[i];
        el.textContent = "";
        if (chars.length <= cap) {
          el.textContent = chars.join("");
          return;
        }
        var at = chars.lastIndexOf(" ", cap);
        at = at > cap / 2 ? at : cap;
        var rest = document.createElement("span");
        rest.className = "fit-rest";
        rest.textContent = chars.slice(at).join("");
        var more = document.createElement("span");
        more.className = "fit-more";
        more.textContent = marker;
        el.append(chars.slice(0, at).join(""), rest, more);
        cut += 1;
      });
      return cut;
    }
    function fits() {
      return PAPERS.every(function (paper) {
        root.width = paper.width + "px";
        var top = document.documentElement.getBoundingClientRect().top;
        return main.getBoundingClientRect().bottom - top <= paper.height - SLACK;
      });
    }

    // The longest length every text can keep with the page on one sheet: all of it when
    // it fits whole, null when it would not fit even with every text at SHORTEST.
    function bestCap() {
      show(longest);
      if (fits()) return longest;
      var low = SHORTEST, high = longest;
      show(low);
      if (!fits()) return null;
      while (high - low > 1) {
        var middle = Math.floor((low + high) / 2);
        show(middle);
        if (fits()) low = middle; else high = middle;
      }
      return low;
    }

    var root = document.documentElement.style;
    var media = sheet.media;
    sheet.media = "all";
    try {
      article.classList.remove("fit-small");
      // The largest type from 11 pt down to 8 pt that keeps one sheet with every text
      // whole, each section whole in its column first (never continued headless), then
      // letting sections continue; only at 8 pt are texts shortened, and below it the
      // last resort.
      var size = null, cap = longest;
      show(longest);
      for (var keep = 1; keep >= 0 && size === null; keep--) {
        article.classList.toggle("keep-sections", keep === 1);
        for (var i = 0; i < SIZES.length && size === null; i++) {
          article.style.setProperty("--print-pt", SIZES[i] + "pt");
          if (fits()) size = SIZES[i];
        }
      }
      if (size === null) {
        size = 8;
        cap = bestCap();
        if (cap === null) {
          article.classList.add("fit-small"); // a smaller type before cutting any further
          size = 7.4;
          article.style.setProperty("--print-pt", size + "pt");
          cap = bestCap();
        }
      }
      article.setAttribute("data-print-pt", String(size));
      article.setAttribute("data-fitted", String(show(cap === null ? SHORTEST : cap)));
    } finally {
      sheet.media = media;
      root.width = "";
    }
  }

  window.addEventListener("load", function () {
    fitToOneSheet();
    if (document.querySelector("[data-autoprint]")) window.print();
  });
  Array.prototype.forEach.call(document.querySelectorAll("[data-print]"), function (button) {
    button.addEventListener("click", function () { window.print(); });
  });

  // --- copy as text --------------------------------------------------------------------
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
