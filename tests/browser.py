"""Headless Chromium for tests, driven by Selenium through Debian's chromedriver (given explicitly, so
selenium-manager never looks for or downloads a driver), with a fresh profile and nothing that reaches the network
on its own."""
from __future__ import annotations

import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMEDRIVER = "/usr/bin/chromedriver"
CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage",
         # WebGL on the CPU (SwiftShader): with --disable-gpu, headless Chromium otherwise offers no WebGL
         "--use-angle=swiftshader", "--enable-unsafe-swiftshader")


def missing() -> str | None:
    """Why no browser can start here, or None."""
    if not Path(CHROMEDRIVER).is_file():
        return f"no {CHROMEDRIVER} (Debian package chromium-driver)"
    if not any(Path(p).is_file() for p in CHROMIUM):
        return "no Chromium (Debian package chromium)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "no selenium (pip install -e '.[dev]')"
    return None


@contextmanager
def chromium(profile: Path, *extra_flags: str, size: tuple[int, int] = (640, 640)):
    """A WebDriver for a headless Chromium whose profile lives in `profile` (a fresh folder); skips where Chromium,
    its driver or Selenium is missing (scripts/setup.sh installs them)."""
    if reason := missing():
        pytest.skip(reason)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = next(p for p in CHROMIUM if Path(p).is_file())
    for flag in (*FLAGS, f"--window-size={size[0]},{size[1]}", *extra_flags):
        options.add_argument(flag)
    profile.mkdir(parents=True, exist_ok=True)
    options.add_argument(f"--user-data-dir={profile}")
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)
