"""A small file system of its own for tests that fill a disk or unmount one."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def mounted(mount_point: Path, options: str):
    """A small file system of its own (tmpfs) at mount_point, as a backup disk would be;
    skipped where this user may not mount one (CI runs as root)."""
    mount_point.mkdir(exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount_point)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip("cannot mount a small file system here (needs root)")
    try:
        yield mount_point
    finally:  # already unmounted by the test: umount says so and nothing happens
        subprocess.run(["umount", "-l", str(mount_point)], capture_output=True, check=False)
