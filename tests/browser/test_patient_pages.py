"""Every patient page, in Chromium: accessibility (axe-core), no sideways scroll on a
320 px phone, tap targets of at least 44 x 44 CSS px, and no request to another host."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from patientapp.db import storage

from .patient_ui import AXE_OPTIONS, EVERY_PAGE, walk_patient_pages
from .staff_ui import format_violations, report

pytestmark = pytest.mark.browser

MIN_TARGET = 44  # CSS px, WCAG 2.5.5 (AAA) and the platform guidelines
STAFF_CSS = Path(__file__).parents[2] / "patientapp" / "static" / "staff.css"

# The rules of staff.css that would style something on this page (none may: patient
# pages do not link it, so a patient class styled only there would go unstyled).
STAFF_RULES_JS = """css => {
    const sheet = new CSSStyleSheet();
    sheet.replaceSync(css);
    const selectors = [];
    const walk = rules => { for (const rule of rules) {
        if (rule.selectorText) selectors.push(rule.selectorText);
        if (rule.cssRules) walk(rule.cssRules);
    } };
    walk(sheet.cssRules);
    return selectors.filter(s => document.querySelector(s.replace(/::[a-z-]+/g, '')));
}"""


TARGETS_JS = """min => [...document.querySelectorAll('button, header a, main a, label.option')]
    .filter(el => el.checkVisibility({visibilityProperty: true, opacityProperty: true}))
    .map(el => {
        const box = el.getBoundingClientRect();
        return {html: el.outerHTML.slice(0, 120), width: Math.round(box.width * 100) / 100,
                height: Math.round(box.height * 100) / 100};
    })
    .filter(t => t.width < min || t.height < min)"""


@pytest.fixture(scope="module")
def walk_360(chromium, live_server):
    """One walk over every patient page at 360 px in a fresh context, recording axe
    results, small tap targets and every request; the tests below each judge one part
    (one walk instead of three keeps the suite fast on two cores)."""
    from axe_playwright_python.sync_playwright import Axe

    from .conftest import Phone

    axe = Axe()
    phone = Phone(chromium, live_server)
    record = {"axe": {}, "targets": {}, "staff_rules": {}}
    record.update(requests=phone.requests, console=phone.console)
    staff_css = STAFF_CSS.read_text(encoding="utf-8")

    def check(page, name):
        violations = axe.run(page, options=AXE_OPTIONS).response["violations"]
        if violations:
            record["axe"][name] = format_violations(violations)
        staff_rules = page.evaluate(STAFF_RULES_JS, staff_css)
        if staff_rules:
            record["staff_rules"][name] = "\n".join(f"  {s}" for s in staff_rules)
        small = page.evaluate(TARGETS_JS, MIN_TARGET)
        if small:
            record["targets"][name] = "\n".join(
                f"  {t['width']} x {t['height']}: {t['html']}" for t in small
            )

    # A crisis number to tap, as clinics set one (Settings): its link is measured too.
    with closing(storage.connect(live_server.database)) as db:
        kept = storage.get_settings(db).get("crisis_phone_numbers")
        storage.save_settings(db, {"crisis_phone_numbers": "Crisis line 988"})
    try:
        record["seen"] = walk_patient_pages(phone, live_server, check, width=360)
        yield record
    finally:
        phone.close()
        with closing(storage.connect(live_server.database)) as db:
            storage.save_settings(db, {"crisis_phone_numbers": kept or ""})


def test_axe_finds_no_violations_on_any_patient_page(walk_360):
    assert set(walk_360["seen"]) >= EVERY_PAGE, EVERY_PAGE - set(walk_360["seen"])
    assert not walk_360["axe"], report(walk_360["axe"], "axe-core violations")


def test_tap_targets_are_at_least_44_px(walk_360):
    assert set(walk_360["seen"]) >= EVERY_PAGE, EVERY_PAGE - set(walk_360["seen"])
    assert not walk_360["targets"], report(
        walk_360["targets"], f"Tap targets under {MIN_TARGET} x {MIN_TARGET} px at 360 px"
    )


def test_every_request_goes_to_the_apps_own_origin(walk_360, live_server):
    requests = walk_360["requests"]
    assert requests, "no request was recorded"
    origin = urlsplit(live_server.url)
    foreign = sorted(
        {
            url
            for url in requests
            if (urlsplit(url).scheme, urlsplit(url).netloc) != (origin.scheme, origin.netloc)
        }
    )
    assert not foreign, f"requests to other origins: {foreign}"
    # The stylesheet is the only subresource, and it is our own; the staff one stays away.
    assert any(urlsplit(url).path == "/static/app.css" for url in requests)
    assert not any(urlsplit(url).path == "/static/staff.css" for url in requests)


def test_no_rule_of_the_staff_stylesheet_applies_to_a_patient_page(walk_360):
    """staff.css holds only what staff and admin pages use: a patient page it would
    style has lost those rules, since it does not link the file."""
    assert set(walk_360["seen"]) >= EVERY_PAGE, EVERY_PAGE - set(walk_360["seen"])
    assert not walk_360["staff_rules"], report(
        walk_360["staff_rules"], "staff.css rules matching a patient page"
    )


def test_no_console_errors_or_csp_violations(walk_360):
    """A Content-Security-Policy violation (an inline style, say) shows up here."""
    messages = [
        m
        for m in walk_360["console"]
        # error pages answer 4xx on purpose; Chromium logs each as a failed load
        if "Failed to load resource" not in m
    ]
    assert not messages, "\n".join(messages)


OVERFLOW_JS = """() => {
    const width = window.innerWidth;
    const wide = [...document.querySelectorAll('body *')]
        .filter(el => el.getBoundingClientRect().right > width + 0.5)
        .map(el => `${el.tagName.toLowerCase()}${el.id ? '#' + el.id : ''}` +
                   `${el.className && typeof el.className === 'string'
                      ? '.' + el.className.trim().replace(/\\s+/g, '.') : ''}` +
                   ` right=${Math.round(el.getBoundingClientRect().right)}`);
    return {scrollWidth: document.documentElement.scrollWidth, innerWidth: width,
            wide: wide.slice(0, 8)};
}"""


def test_no_sideways_scroll_at_320_px(phone, live_server):
    found: dict[str, str] = {}

    def check(page, name):
        measured = page.evaluate(OVERFLOW_JS)
        if measured["innerWidth"] != 320 or measured["scrollWidth"] > measured["innerWidth"]:
            found[name] = (
                f"  scrollWidth {measured['scrollWidth']} > innerWidth "
                f"{measured['innerWidth']}; too wide: {measured['wide']}"
            )

    seen = walk_patient_pages(phone, live_server, check, width=320)
    assert set(seen) >= EVERY_PAGE, EVERY_PAGE - set(seen)
    assert not found, report(found, "Sideways scroll at 320 px")


@pytest.mark.parametrize("language", ["ar", "zh_Hans"])
def test_the_language_link_is_a_whole_tap_target_in_short_words(phone, live_server, language):
    """The header's "Language" link is one short word in Arabic and Chinese (41 px wide
    before): still 44 x 44 px."""
    page = phone.open(320)
    page.goto(f"{live_server.invite().link}?lang={language}")
    box = page.locator(".lang-jump a").bounding_box()
    assert box["width"] >= MIN_TARGET and box["height"] >= MIN_TARGET, box
