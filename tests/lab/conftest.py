"""What the explorer's browser tests share: a page of Debian's chromium, driven by Playwright."""

import os
import shutil

import pytest

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def browser_page():
    """A page of chromium for a module's tests (a new one per test would cost seconds); the
    errors its scripts raise gather in ``page.errors``."""
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("the explorer's browser tests need Debian's chromium: apt-get install chromium")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = launched.new_page()
            page.set_default_timeout(20_000)
            page.errors = []
            page.on("pageerror", lambda error: page.errors.append(str(error)))
            yield page
        finally:
            launched.close()
