"""Screenshots of the explorer's views for the README, taken from the real page.

Run from the repository root: ``python docs/screenshots.py`` (needs Debian's chromium and
Playwright for Python, as the tests do). It serves the page on a free loopback port, opens it
in headless chromium at 1280 x 900 and saves one PNG per view into docs/.
"""

import shutil
import sys
from pathlib import Path
from typing import NamedTuple

from playwright.sync_api import sync_playwright

from adamlab.lab import explore

DOCS = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
#: a script that pauses a view's race ({1}: surface, parabola) at step {0}, as its slider would
SCRUB = """() => {{ const scrub = document.getElementById("{1}-scrub");
  scrub.value = "{0}"; scrub.dispatchEvent(new Event("input")); }}"""
class View(NamedTuple):
    selector: str  # the element to photograph
    ready: str  # what to wait for
    problem: str | None = None  # the problem the server's races show
    fragment: str = ""  # the view's settings, as a link gives them
    then: str = ""  # a script to run before the picture (the frame a race shows)


VIEWS = {
    "explore-step-by-step.png": View("#stepper", "window.stepper.draws >= 1"),
    "explore-played-on-w2.png": View("#parabola", "window.parabolaView.draws >= 1",
                                     fragment="#lr=0.05&beta1=0&beta2=0.9", then=SCRUB.format(40, "parabola")),
    "explore-bias-correction.png": View("#bias", "window.bias.draws >= 1"),
    "explore-moment-generating-function.png": View("#mgf", "window.moments.draws >= 1"),
    "explore-adagrad-dying.png": View("#dying", "window.dying.draws >= 1"),
    "explore-amsgrad.png": View("#amsgrad", "window.amsgradView.draws >= 1"),
    "explore-l2-against-adamw.png": View("#decay", "window.decayView.draws >= 1"),
    "explore-surface-rosenbrock.png": View("#surface", "window.surfaceView.draws >= 1",
                                           fragment="#surface_on=sgd,momentum,rmsprop,adam,lion"),
    "explore-surface-saddle.png": View("#surface", "window.surfaceView.draws >= 1",
                                       fragment="#surface_name=saddle&surface_on=sgd,momentum,rmsprop,adam,adagrad",
                                       then=SCRUB.format(60, "surface")),
    "explore-race-rosenbrock.png": View("main", "window.explorer.draws >= 1", "rosenbrock"),
    "explore-race-weight-decay.png": View("main", "window.explorer.draws >= 1", "weight-decay"),
    "explore-race-flip.png": View("main", "window.explorer.draws >= 1", "flip"),
}


def main() -> int:
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    server = explore.serve(port=0)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            for name, view in VIEWS.items():
                page.goto("about:blank")
                page.goto(server.url + view.fragment)
                page.wait_for_function(view.ready, timeout=60_000)
                if view.problem is not None:
                    draws = page.evaluate("window.explorer.draws")
                    page.select_option("#problem", view.problem)
                    page.wait_for_function(f"window.explorer.draws > {draws}", timeout=60_000)
                if view.then:
                    page.evaluate(view.then)
                page.locator(view.selector).screenshot(path=DOCS / name)
                print(f"wrote {DOCS / name}")
            browser.close()
    finally:
        server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
