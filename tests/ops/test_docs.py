"""Every `flask` command the app registers has help text and a line in README.md."""

from __future__ import annotations

import re
from pathlib import Path

import click

README = Path(__file__).resolve().parents[2] / "README.md"
# The README section that documents a command: its group's own section, else Operations.
SECTION_OF_GROUP = {"i18n": "Languages"}


def registered(group: click.Group, prefix: tuple[str, ...] = ()):
    """(full name, command) for every command and subcommand of a click group."""
    for name, command in sorted(group.commands.items()):
        path = (*prefix, name)
        yield " ".join(path), command
        if isinstance(command, click.Group):
            yield from registered(command, path)


def readme_section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"README.md has no '## {title}' section"
    return match.group(1)


def test_the_walk_finds_every_command_and_subcommand(app):
    names = [name for name, _command in registered(app.cli)]
    assert {"serve", "create-user", "i18n", "i18n check"} <= set(names)


def test_every_command_has_help_text(app):
    missing = [name for name, command in registered(app.cli) if not (command.help or "").strip()]
    assert missing == [], f"commands without a docstring or help=: {missing}"


def test_every_command_is_in_the_readme(app):
    missing = []
    for name, _command in registered(app.cli):
        section = SECTION_OF_GROUP.get(name.split()[0], "Operations")
        if not re.search(rf"--app app {re.escape(name)}(?![\w-])", readme_section(section)):
            missing.append(f"{name} (under ## {section})")
    assert missing == [], f"README.md shows no `flask --app app ...` line for: {missing}"


def test_every_module_has_a_line_in_how_it_works():
    """A newcomer finds any behaviour's home from README's module map alone: every module
    by its path under patientapp/, every package by its folder."""
    package = README.parent / "patientapp"
    section = readme_section("How it works")
    modules = [p for p in package.rglob("*.py") if p.name != "__init__.py"]
    missing = [
        p.relative_to(package).as_posix()
        for p in modules
        if f"`{p.relative_to(package).as_posix()}`" not in section
    ]
    packages = [p for p in package.iterdir() if (p / "__init__.py").is_file()]
    missing += [f"{p.name}/" for p in packages if f"`{p.name}/" not in section]
    assert missing == [], f"modules missing from README's How it works: {missing}"
    assert len(modules) > 30


# A line of the environment file as README shows it: NAME=value, alone on its line.
ENV_LINE = re.compile(r"^\s*(PATIENTAPP_[A-Z_]+)=(.*)$", re.M)


def test_every_setting_line_reads_the_same_in_sh_as_in_systemd(tmp_path):
    """Found on an IT walk: README's unquoted PATIENTAPP_COPY_COMMAND=rclone copyto ...
    broke the nightly cron backup, which reads the environment file with `sh` (`set -a;
    . file`): sh ran "copyto" as a command (exit 127, no backup). Every such line README
    shows must give sh the value systemd's EnvironmentFile gives the service."""
    import shlex
    import subprocess

    text = README.read_text(encoding="utf-8")
    lines = {  # not a command given one setting for its own run (`NAME=value flask ...`)
        name: value
        for name, value in ENV_LINE.findall(text)
        if "`" not in value and "/bin/" not in value
    }
    assert "PATIENTAPP_COPY_COMMAND" in lines and len(lines) >= 3
    wrong = {}
    for name, value in lines.items():
        env_file = tmp_path / "patientapp.env"
        env_file.write_text(f"{name}={value}\n", encoding="utf-8")
        # systemd: one pair of surrounding quotes is removed (systemd.exec, EnvironmentFile)
        systemd = value[1:-1] if len(value) > 1 and value[0] == value[-1] == '"' else value
        read = subprocess.run(
            ["sh", "-c", f"set -a && . {shlex.quote(str(env_file))} && printenv {name}"],
            capture_output=True,
            text=True,
            env={"PATH": "/usr/bin:/bin"},
        )
        if read.returncode != 0 or read.stdout.rstrip("\n") != systemd:
            wrong[name] = (value, read.returncode, read.stdout, read.stderr)
    assert not wrong, wrong
