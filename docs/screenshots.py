"""Screenshots of the explorer's views for the README, taken from the real page.

Run from the repository root: ``python docs/screenshots.py`` (needs Debian's chromium and
Playwright for Python, as the tests do). It serves the page on a free loopback port, opens it
in headless chromium at 1280 x 900 and saves one PNG per view into docs/.
"""

import shutil
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

from adamlab.lab import explore

DOCS = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
#: view -> (the element to photograph, what to wait for, the problem the races show)
VIEWS = {
    "explore-step-by-step.png": ("#stepper", "window.stepper.draws >= 1", None),
    "explore-bias-correction.png": ("#bias", "window.bias.draws >= 1", None),
    "explore-moment-generating-function.png": ("#mgf", "window.moments.draws >= 1", None),
    "explore-adagrad-dying.png": ("#dying", "window.dying.draws >= 1", None),
    "explore-amsgrad.png": ("#amsgrad", "window.amsgradView.draws >= 1", None),
    "explore-l2-against-adamw.png": ("#decay", "window.decayView.draws >= 1", None),
    "explore-race-rosenbrock.png": ("main", "window.explorer.draws >= 1", "rosenbrock"),
    "explore-race-weight-decay.png": ("main", "window.explorer.draws >= 1", "weight-decay"),
}


def main() -> int:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    server = explore.serve(port=0)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, (selector, ready, problem) in VIEWS.items():
                page.goto(server.url)
                page.wait_for_function(ready, timeout=60_000)
                if problem is not None:
                    draws = page.evaluate("window.explorer.draws")
                    page.select_option("#problem", problem)
                    page.wait_for_function(f"window.explorer.draws > {draws}", timeout=60_000)
                page.locator(selector).screenshot(path=DOCS / name)
                print(f"wrote {DOCS / name}")
            browser.close()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
