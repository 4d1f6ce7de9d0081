"""The visual check of a report: render an HTML page in headless Chromium and save a PNG screenshot.

Usage: python -m reports.screenshot PAGE.html OUT.png [--width 1280] [--height 2400]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install Debian's chromium (apt-get install -y chromium) or put a Chrome/Chromium binary on PATH"


class BrowserMissing(RuntimeError):
    """No Chromium-like browser on this machine."""


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    raise BrowserMissing(f"no headless browser found (looked for {', '.join(BROWSERS)}): {INSTALL_HINT}")


def browser_command(browser: str, page: Path, png: Path, profile: Path, width: int, height: int) -> list[str]:
    """Headless, offline and quiet: no sync, no component updates, no first-run, a throw-away profile."""
    return [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
            f"--user-data-dir={profile}", f"--screenshot={png}", f"--window-size={width},{height}", page.as_uri()]


def screenshot(page: Path, png: Path, *, width: int = 1280, height: int = 2400, timeout_s: float = 120.0) -> Path:
    """Render `page` and write the screenshot to `png`; raises with the browser's own words when it fails."""
    page, png = page.resolve(), png.resolve()
    if not page.is_file():
        raise FileNotFoundError(f"no page at {page}")
    browser = find_browser()
    png.parent.mkdir(parents=True, exist_ok=True)
    png.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="bilevel-chromium-") as profile:
        # Its own session, so that on a timeout the whole browser (it forks helpers) is stopped, and only it.
        process = subprocess.Popen(browser_command(browser, page, png, Path(profile), width, height),
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
        try:
            _, errors = process.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"{browser} did not finish within {timeout_s:.0f} s rendering {page}") from None
    if process.returncode != 0 or not png.is_file() or png.stat().st_size == 0:
        tail = "\n".join(errors.strip().splitlines()[-15:])
        raise RuntimeError(f"{browser} exited with {process.returncode} and wrote no screenshot of {page}:\n{tail}")
    return png


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m reports.screenshot", description=__doc__.splitlines()[0])
    parser.add_argument("page", type=Path)
    parser.add_argument("png", type=Path)
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--height", type=int, default=2400)
    args = parser.parse_args(argv)
    try:
        print(screenshot(args.page, args.png, width=args.width, height=args.height))
    except (BrowserMissing, FileNotFoundError, RuntimeError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
