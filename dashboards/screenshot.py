"""A PNG screenshot of the HTML report with headless Chromium (Debian's ``chromium``).

``screenshot(html, png)`` runs Chromium once, offline (no first-run, sync, component updates or
background networking; a throwaway profile folder) and waits for it; the page itself loads
nothing from outside. Blocking; raises ``ScreenshotError`` with one line on failure.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from dashboards.errors import DashboardsError

DEFAULT_SIZE = (1400, 4000)


class ScreenshotError(DashboardsError):
    """Chromium is missing or did not write the PNG."""


def find_chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    raise ScreenshotError(
        "no chromium on PATH: install Debian's chromium (bash tests/setup-tools.sh does)"
    )


def screenshot(
    html: Path, png: Path, *, size: tuple[int, int] = DEFAULT_SIZE, timeout_s: float = 120.0
) -> Path:
    """Render ``html`` at ``size`` (width, height in CSS pixels) into ``png``."""
    binary = find_chromium()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="parwatch-chromium-") as profile:
        cmd = [
            binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
            f"--window-size={size[0]},{size[1]}", f"--screenshot={png.resolve()}",
            html.resolve().as_uri(),
        ]  # fmt: skip
        try:
            done = subprocess.run(cmd, capture_output=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise ScreenshotError(f"chromium took more than {timeout_s:g} s") from None
    if not png.exists() or png.stat().st_size == 0:
        tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no output"]
        raise ScreenshotError(f"chromium wrote no screenshot (exit {done.returncode}): {tail[0]}")
    return png
