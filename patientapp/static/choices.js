// Choices that explain themselves. On a question whose check boxes have rules (a most,
// as in "Pick up to 3", or a choice that goes alone, as "No worries"), a tick that would
// break one is set right at once, and a short live message under the choices says what
// changed. The words come from the page, translated there: data-* attributes on the
// fieldset (see the rules macro of _item_types.html) and each choice's label as shown.
// The server checks the same rules after Next; without this file nothing changes.
(() => {
  "use strict";

  // "A, B and C" as the page's language writes a list.
  function list(labels) {
    try {
      return new Intl.ListFormat(document.documentElement.lang, { type: "conjunction" })
        .format(labels);
    } catch (e) {
      return labels.join(", ");
    }
  }

  const labelOf = (box) => box.labels[0].textContent.trim();

  // A screen reader reads a live message when its words change: the same message twice
  // in a row differs by a no-break space, so the second time is heard too.
  function say(note, text) {
    if (text && note.textContent === text) text += "\u00a0";
    note.textContent = text;
  }

  document.addEventListener("change", (event) => {
    const box = event.target;
    const group = box.closest("fieldset");
    const note = group && group.querySelector(":scope > .choice-note");
    if (!note || box.type !== "checkbox") return;
    const rules = group.dataset;
    const boxes = [...group.querySelectorAll("input[type=checkbox]")];
    const alone = (b) => (rules.exclusive || "").split(" ").includes(b.value);
    let text = "";  // a change that unticks nothing clears the last message
    if (box.checked) {
      // A choice that goes alone unticks the others; any other choice unticks it.
      const unticked = boxes.filter((b) => b !== box && b.checked && (alone(box) || alone(b)));
      unticked.forEach((b) => { b.checked = false; });
      if (unticked.length === 1) {
        text = rules.untickedOne.replace("%(choice)s", () => labelOf(unticked[0]));
      } else if (unticked.length) {
        text = rules.untickedMany.replace("%(choices)s", () => list(unticked.map(labelOf)));
      }
      // One more than the most allowed: the tick just made is taken back.
      if (rules.max && boxes.filter((b) => b.checked).length > Number(rules.max)) {
        box.checked = false;
        text = rules.maxMessage;
      }
    }
    say(note, text);
  });
})();
