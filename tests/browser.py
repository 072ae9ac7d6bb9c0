"""Debian's Chromium, headless, driven by Selenium through Debian's chromedriver (given explicitly, so
selenium-manager never looks for or downloads a driver), with a fresh profile and nothing that phones home."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

CHROMIUM = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,800")


def chromium(profile: Path, *extra_flags: str):
    """A Selenium driver for headless Chromium with its profile in `profile` (skips where Chromium or its driver, or
    Selenium, is missing: scripts/setup.sh installs them)."""
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    binary = next((b for b in CHROMIUM if Path(b).is_file()), None) or shutil.which("chromium")
    if binary is None or not Path(CHROMEDRIVER).is_file():
        pytest.skip("chromium and chromium-driver are not installed (scripts/setup.sh installs them)")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    for flag in extra_flags:
        options.add_argument(flag)
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
