"""How long the explorer's views take to redraw after an input, measured in Chromium.

Run from the repository root: ``python benchmarks/explorer.py [--json FILE] [--repeats N]``
(needs Debian's chromium and Playwright for Python, as the tests do). It exports the page to a
temporary folder, opens it from ``file://`` in headless chromium, and for each view changes an
input back and forth, timing from the input event to the end of the view's redraw (its script
runs the race and draws it synchronously). It prints the median, fastest and slowest of
``--repeats`` redraws (after two to warm up) per view. A benchmark, not a test: the numbers
depend on the machine.
"""

import argparse
import json
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright
from rich.console import Console
from rich.table import Table

from adamlab.lab import explore

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]

#: view -> (what it redraws, the page's fragment, the input to change, its two values)
VIEWS = {
    "surface": ("8 optimizers x 1,000 steps on Rosenbrock",
                "#surface_on=sgd,momentum,rmsprop,adam,adamw,amsgrad,lion,nadam", "surface-x", ("-1.5", "-1.49")),
    "stepper": ("the table of 1,000 gradients", "#grads=" + ",".join(["0.5,-0.3"] * 500), "step-lr", ("0.001", "0.002")),
    "parabola": ("Adam and momentum, 2,000 steps on w^2", "#parabola_steps=2000", "parabola-steps", ("2000", "1999")),
    "bias": ("the multipliers of 10,000 steps", "", "bias-beta2", ("0.999", "0.99")),
    "mgf": ("M(t) and 200 sampled gradients", "", "mgf-mean", ("0.5", "0.6")),
    "dying": ("3 optimizers x 10,000 steps", "", "dying-lr", ("0.01", "0.02")),
    "amsgrad": ("2 optimizers x 3,000 steps", "", "amsgrad-lr", ("0.1", "0.2")),
    "decay": ("2 optimizers x the weight-decay race", "", "decay-lr", ("0.01", "0.02")),
}

TIME = """([id, value]) => {
  const input = document.getElementById(id);
  const began = performance.now();
  input.value = value;
  input.dispatchEvent(new Event("input"));
  return performance.now() - began;
}"""


def measure(page, url: str, fragment: str, field: str, values, repeats: int) -> list[float]:
    page.goto("about:blank")
    page.goto(url + fragment)
    page.wait_for_function("window.surfaceView && window.surfaceView.draws >= 1 && window.parabolaView.draws >= 1")
    times = [page.evaluate(TIME, [field, values[index % 2]]) for index in range(repeats + 2)]
    return times[2:]  # the first two warm the script up


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="redraws timed per view (default 7)")
    parser.add_argument("--json", type=Path, help="also write the timings to this file (it must not exist)")
    arguments = parser.parse_args(argv)
    if arguments.json is not None and arguments.json.exists():
        parser.error(f"{arguments.json} exists; give a new file")
    console = Console()
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    results = {}
    with tempfile.TemporaryDirectory() as folder, sync_playwright() as playwright:
        explore.export(Path(folder) / "page")
        url = (Path(folder) / "page" / "index.html").as_uri()
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        with console.status("timing the explorer's redraws in chromium") as status:
            for view, (what, fragment, field, values) in VIEWS.items():
                status.update(f"timing {view}: {what}")
                times = measure(page, url, fragment, field, values, arguments.repeats)
                results[view] = {"what": what, "median_ms": statistics.median(times), "times_ms": times}
        browser.close()
    table = Table(title=f"redraw after an input, in chromium (ms; {arguments.repeats} redraws each)")
    for column in ("view", "what it redraws", "median", "fastest", "slowest"):
        table.add_column(column, justify="left" if column in ("view", "what it redraws") else "right")
    for view, result in results.items():
        times = result["times_ms"]
        table.add_row(view, result["what"], f"{result['median_ms']:.1f}", f"{min(times):.1f}", f"{max(times):.1f}")
    console.print(table)
    if arguments.json is not None:
        arguments.json.write_text(json.dumps(results, indent=1) + "\n")
        console.print(f"wrote {arguments.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
