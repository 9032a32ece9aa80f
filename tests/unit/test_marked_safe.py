"""Every place that marks text as safe HTML, listed and reviewed (issue 19, point 5).

Jinja escapes a value unless it is marked safe. Three things mark it here: Markup(),
`|safe` in a template, and, easy to miss, a lazy translation: flask_babel's LazyString
has ``__html__`` returning the text as it is, so ``_l("... %(name)s", name=typed)`` puts
``typed`` on the page unescaped. A message with what someone typed in it is made with
gettext() when the form is checked (a plain str, escaped like any other).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "patientapp"
TEMPLATES = ROOT / "templates"
LAZY = {"lazy_gettext", "lazy_pgettext", "lazy_ngettext", "lazy_npgettext"}

# (module, msgid) of each lazy translation given values, and why none of them is typed text.
REVIEWED_LAZY_VALUES = {
    ("admin/forms.py", "Please enter a whole number from %(low)s to %(high)s."): "ints in code",
    ("admin/forms.py", "What to do in a crisis, in %(language)s"): "i18n.LANGUAGES names",
    ("domain/passwords.py", "Please use at least %(n)s characters."): "a constant",
    ("questionnaire/fields.py", "Please keep this to %(max)s characters or fewer."): "ints in code",
    ("questionnaire/types.py", "Please pick no more than %(n)s."): "the definition's limit",
    (
        "questionnaire/types.py",
        "“%(choice)s” can't be picked together with other answers. Please untick one of them.",
    ): "a choice label of the definition",
}
# (template, what is piped through |safe) and where it comes from.
REVIEWED_SAFE_FILTERS = {
    ("staff/invitation.html", "handover.qr_svg"): "segno's SVG; its title is escaped",
    ("staff/slip.html", "handover.qr_svg"): "segno's SVG; its title is escaped",
    ("staff/mfa.html", "qr_svg"): "segno's SVG; its title is escaped",
}
MARKUP_MODULES = {"summary/view.py", "web/context.py"}  # Markup % and .format(): each value escaped


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        yield path.relative_to(PACKAGE).as_posix(), ast.parse(path.read_text("utf-8"))


def lazy_names(tree: ast.Module) -> set[str]:
    """The names a module calls flask_babel's lazy translations by."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == "flask_babel":
            names |= {alias.asname or alias.name for alias in node.names if alias.name in LAZY}
    return names


def called(node: ast.Call) -> str:
    func = node.func
    return func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")


def test_no_typed_text_goes_into_a_lazy_translation():
    found = {}
    for name, tree in modules():
        lazy = lazy_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and called(node) in lazy and node.keywords:
                msgid = node.args[-1].value if node.args else "?"
                found[(name, msgid)] = ast.unparse(node)
    unreviewed = {key: code for key, code in found.items() if key not in REVIEWED_LAZY_VALUES}
    assert not unreviewed, (
        "A lazy translation is safe HTML in Jinja. Give it no typed text (use gettext "
        f"when the form is checked), then list it in REVIEWED_LAZY_VALUES: {unreviewed}"
    )
    assert set(REVIEWED_LAZY_VALUES) <= set(found), "remove what is gone from the list"


def test_markup_is_only_built_with_escaped_values():
    for name, tree in modules():
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and called(node) == "Markup"):
                continue
            assert name in MARKUP_MODULES, f"{name}: Markup() outside the reviewed modules"
            [arg] = node.args
            # A literal, or a fixed name: never text already put together (an f-string,
            # a +, a .format() or a %) that would carry a value in unescaped.
            assert isinstance(arg, ast.Constant | ast.Name), f"{name}: {ast.unparse(node)}"


def test_templates_mark_nothing_safe_but_the_qr_codes():
    found = set()
    for path in sorted(TEMPLATES.rglob("*.html")):
        text = path.read_text("utf-8")
        name = path.relative_to(TEMPLATES).as_posix()
        assert "autoescape" not in text and "filter safe" not in text, name
        found |= {(name, expr.strip()) for expr in re.findall(r"\{\{([^}|]*)\|\s*safe\b", text)}
    assert found == set(REVIEWED_SAFE_FILTERS)
