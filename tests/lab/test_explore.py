"""``adamlab explore``: its JSON API against ``race.run`` and ``trace``, its command, and its page
in a real headless browser (Debian's chromium driven by Playwright)."""

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from urllib.parse import parse_qs

import pytest

from adamlab.cli import main
from adamlab.lab import explore, race, trace

BROWSER_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture(scope="module")
def server():
    server = explore.serve(port=0)
    yield server
    server.close()


def get(server, path: str) -> tuple[int, str, bytes]:
    """The status, content type and body of GET ``path``, errors included."""
    try:
        with urllib.request.urlopen(server.url + path.lstrip("/"), timeout=60) as response:
            return response.status, response.headers["Content-Type"], response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read()


def api(server, path: str):
    status, content_type, body = get(server, path)
    assert (status, content_type) == (200, "application/json"), body
    return json.loads(body)


def as_json(value):
    """``value`` as it comes back through JSON (tuples as lists)."""
    return json.loads(json.dumps(value))


# --- the API -----------------------------------------------------------------------------------

def test_problems_lists_every_problem_with_its_defaults(server):
    answer = api(server, "/api/problems")
    assert [problem["name"] for problem in answer["problems"]] == list(race.PROBLEMS)
    assert [optimizer["name"] for optimizer in answer["optimizers"]] == list(race.OPTIMIZERS)
    assert answer["knobs"] == list(race.KNOBS) and answer["max_steps"] == explore.MAX_STEPS
    rosenbrock = next(problem for problem in answer["problems"] if problem["name"] == "rosenbrock")
    assert rosenbrock["dimensions"] == 2 and rosenbrock["bounds"] == list(race.PROBLEMS["rosenbrock"].bounds)
    assert rosenbrock["optimizers"] == list(race.PROBLEMS["rosenbrock"].lrs)
    assert rosenbrock["steps"] == race.PROBLEMS["rosenbrock"].steps
    # every optimizer's lr, the field's and the others', is the one race.run gives it by default
    ran = race.run("rosenbrock", list(race.OPTIMIZERS), steps=1)
    assert rosenbrock["lrs"] == {run.optimizer: run.lr for run in ran.runs}


def test_a_race_is_race_runs_numbers_with_the_loss_contours(server):
    answer = api(server, "/api/race?problem=rosenbrock&optimizers=adam,sgd&lr_adam=0.02&beta1=0.8&steps=50")
    expected = race.run("rosenbrock", ["adam", "sgd"], {"adam": 0.02}, 50, beta1=0.8).to_json()
    assert {key: answer[key] for key in expected} == as_json(expected)
    assert [run["lr"] for run in answer["runs"]] == [0.02, race.PROBLEMS["rosenbrock"].lrs["sgd"]]
    assert answer["dimensions"] == 2 and answer["internals"] is None
    levels = [contour["level"] for contour in answer["contours"]]
    assert len(levels) > 5 and levels == sorted(levels) and levels[0] > 0
    x_low, x_high, y_low, y_high = race.PROBLEMS["rosenbrock"].bounds
    points = [point for contour in answer["contours"] for line in contour["lines"] for point in line]
    assert points and all(x_low <= x <= x_high and y_low <= y <= y_high for x, y in points)


def test_lr_sets_every_chosen_optimizer_and_lr_name_one(server):
    answer = api(server, "/api/race?problem=quadratic&lr=0.1&lr_adam=0.2")
    assert {run["optimizer"]: run["lr"] for run in answer["runs"]} == {"sgd": 0.1, "momentum": 0.1, "adam": 0.2}


def test_a_problems_own_options_are_parameters(server):
    moments = next(problem for problem in api(server, "/api/problems")["problems"] if problem["name"] == "moments")
    assert moments["options"] == [{"name": name, "about": about, "value": getattr(race.PROBLEMS["moments"], name)}
                                  for name, about in race.PROBLEMS["moments"].options.items()]
    answer = api(server, "/api/race?problem=moments&mean=-2&spread=0.25&steps=40")
    expected = race.run("moments", steps=40, options={"mean": -2.0, "spread": 0.25}).to_json()
    assert {key: answer[key] for key in expected} == as_json(expected)
    assert answer["truth"] == {"mean": -2.0, "mean_square": 4.0625}


def test_one_parameter_races_carry_the_trace_of_each_run(server):
    answer = api(server, "/api/race?problem=quadratic&optimizers=adam,sgd&beta1=0.5&lr=0.05")
    assert answer["contours"] is None
    for run, internals in zip(answer["runs"], answer["internals"]):
        knobs = {"beta1": 0.5} if run["optimizer"] == "adam" else {}  # beta1 is not sgd's
        assert internals["rows"] == trace.trace(run["optimizer"], run["grads"], 5.0, lr=0.05, **knobs)
        assert internals["parts_at"] is None  # the reference maths walks the torch optimizer's path
        assert [row["param"] for row in internals["rows"]] == pytest.approx([w for w, in run["params"][1:]])
    assert {"m", "v", "m_hat", "v_hat", "update"} <= set(answer["internals"][0]["rows"][0])
    # Reddi et al.'s problem schedules lr / sqrt(t) and clamps x: a trace at a constant lr parts at step 2
    answer = api(server, "/api/race?problem=amsgrad&steps=10")
    assert [internals["parts_at"] for internals in answer["internals"]] == [2, 2]


@pytest.mark.parametrize("query, message", [
    ("", "problem is required; choose from quadratic, rosenbrock"),
    ("problem=nope", "unknown problem 'nope'; choose from quadratic, rosenbrock"),
    ("problem=quadratic&problem=rosenbrock", "give problem once"),
    ("problem=quadratic&optimizers=adam,nadam", "unknown optimizer 'nadam'; choose from sgd, momentum"),
    ("problem=quadratic&lr_nadam=0.1", "unknown optimizer 'nadam'"),
    ("problem=quadratic&colour=red", "unknown parameter 'colour'"),
    ("problem=quadratic&steps=0", "steps must be a whole number from 1 to 5000, got '0'"),
    ("problem=quadratic&steps=5001", "steps must be a whole number from 1 to 5000"),
    ("problem=quadratic&steps=2.5", "steps must be a whole number from 1 to 5000"),
    ("problem=quadratic&steps=ten", "steps must be a whole number from 1 to 5000"),
    ("problem=quadratic&steps=%C2%B2", "steps must be a whole number from 1 to 5000"),
    ("problem=quadratic&lr=-1", "must be a positive number, got -1.0"),
    ("problem=quadratic&lr_adam=abc", "lr_adam must be a number, got 'abc'"),
    ("problem=quadratic&eps=nan", "eps must be a finite number"),
    ("problem=quadratic&beta1=1.5", "must be in [0, 1), got 1.5"),  # the optimizers' own message
    ("problem=quadratic&weight_decay=-0.1", "weight_decay must be >= 0"),
    ("problem=quadratic&mean=1", "quadratic has no setting 'mean'"),
    ("problem=moments&spread=inf", "spread must be a finite number"),
])
def test_bad_requests_are_400_with_a_message(server, query, message):
    status, content_type, body = get(server, f"/api/race?{query}")
    assert (status, content_type) == (400, "application/json")
    assert message in json.loads(body)["error"]


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/static/nope.js", "/static/README.md",
                                  "/static/../explore.py", "/static/%2e%2e/explore.py", "/static/"])
def test_unknown_paths_are_404(server, path):
    status, content_type, body = get(server, path)
    assert (status, content_type) == (404, "application/json") and json.loads(body)["error"]


def test_the_page_and_its_files_are_served(server):
    status, content_type, page = get(server, "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    for name in ("explore.js", "explore.css", "chart.umd.min.js"):
        assert f"/static/{name}".encode() in page
        status, _, body = get(server, f"/static/{name}")
        assert status == 200 and body
    assert get(server, "/static/chart.umd.min.js")[2].startswith(b"/*!\n * Chart.js v4.")


def test_it_listens_on_loopback_unless_told_otherwise(server):
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    assert explore.is_loopback("127.0.0.1") and explore.is_loopback("::1") and explore.is_loopback("localhost")
    assert not explore.is_loopback("0.0.0.0") and not explore.is_loopback("192.168.1.2")


def test_a_request_for_another_host_name_is_refused(server):
    """A page elsewhere that points its own name at 127.0.0.1 (DNS rebinding) gets nothing."""
    port = server.server_address[1]
    for host, status in [(f"127.0.0.1:{port}", 200), (f"localhost:{port}", 200),
                         (f"attacker.example:{port}", 403), ("127.0.0.1.attacker.example", 403), (None, 403)]:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        connection.putrequest("GET", "/api/problems", skip_host=True)
        if host is not None:
            connection.putheader("Host", host)
        connection.endheaders()
        response = connection.getresponse()
        body = json.loads(response.read())
        connection.close()
        assert response.status == status, (host, body)
        if status == 403:
            assert f"answers to {server.url} only" in body["error"]


# --- the command -------------------------------------------------------------------------------

def test_the_command_serves_until_interrupted():
    command = subprocess.Popen([sys.executable, "-m", "adamlab", "explore", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = command.stdout.readline()
        assert line.startswith("adamlab explore: serving on http://127.0.0.1:") and "(Ctrl-C to stop)" in line
        url = line.split()[4]
        with urllib.request.urlopen(url + "api/problems", timeout=60) as response:
            assert response.status == 200
        command.send_signal(signal.SIGINT)
        out, err = command.communicate(timeout=30)
    finally:
        command.kill()
    assert command.returncode == 0 and out == ""
    assert err == "adamlab explore: stopped\n"  # and not a line per request


def test_a_port_in_use_is_one_line_and_status_2(capsys):
    with socket.socket() as taken:
        taken.bind(("0.0.0.0", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["explore", "--port", str(port)]) == 2
        _, err = capsys.readouterr()
        assert err == f"adamlab explore: error: port {port} on 127.0.0.1 is in use; pick another with --port " \
                      f"(0: any free port)\n"
        # another host than loopback: a warning first
        assert main(["explore", "--host", "0.0.0.0", "--port", str(port)]) == 2
        warning, error = capsys.readouterr()[1].splitlines()
        assert warning.startswith("adamlab explore: warning: 0.0.0.0 is not a loopback address")
        assert error.startswith(f"adamlab explore: error: port {port} on 0.0.0.0 is in use")


# --- the page, in a browser --------------------------------------------------------------------

def drawn_paths(page) -> list:
    """The trajectories on the page's path chart: [label, [[x, y] or [step, w], ...]] per run."""
    return page.evaluate("""() => window.explorer.charts.path.data.datasets
        .filter((dataset) => dataset.run !== undefined)
        .map((dataset) => [dataset.label, dataset.data.map((point) => [point.x, point.y])])""")


def paths_of(answer) -> list:
    """The same from an answer of the API (or a race's JSON)."""
    if race.PROBLEMS[answer["problem"]].dimensions == 1:
        return [[run["label"], [[step, w] for step, (w,) in enumerate(run["params"])]] for run in answer["runs"]]
    return [[run["label"], run["params"]] for run in answer["runs"]]


def test_the_page_draws_what_the_api_computes(server):
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    if not os.path.exists(chromium):
        pytest.fail("the explorer's browser test needs Debian's chromium: apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail("the explorer's browser test needs Playwright for Python: pip install playwright "
                    "(it drives the system's chromium; no browser download needed)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=BROWSER_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(20_000)
            errors = []
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("console", lambda message: message.type == "error" and errors.append(message.text))
            page.goto(server.url)

            # The first view: the first problem (one parameter) at its defaults, with the trace table.
            page.wait_for_function("window.explorer.draws >= 1")
            first = page.evaluate("window.explorer.response")
            assert first["problem"] == "quadratic"
            assert drawn_paths(page) == paths_of(first) == paths_of(as_json(race.run("quadratic").to_json()))
            headers = page.locator("#internals-table th").all_inner_texts()
            assert {"m", "v", "m_hat", "v_hat", "update", "theta"} <= set(headers)
            assert page.locator("#internals-table tbody tr").count() == race.PROBLEMS["quadratic"].steps

            # Rosenbrock at its defaults is race.run's default race, drawn over the loss's contours.
            page.select_option("#problem", "rosenbrock")
            page.wait_for_function("window.explorer.response.problem === 'rosenbrock'")
            before = drawn_paths(page)
            assert before == paths_of(as_json(race.run("rosenbrock").to_json()))
            assert page.evaluate("window.explorer.charts.path.data.datasets.some((dataset) => dataset.contour)")

            # Move the lr slider: the path redraws, and is the API's for the settings the page sent.
            draws = page.evaluate("window.explorer.draws")
            page.eval_on_selector("#lr", """(slider) => {
                slider.value = "-0.5";
                slider.dispatchEvent(new Event("input", {bubbles: true}));
            }""")
            page.wait_for_function(f"window.explorer.draws > {draws}")
            after = drawn_paths(page)
            assert after != before
            query = page.evaluate("window.explorer.query")
            sent = parse_qs(query)
            assert float(sent["lr_adam"][0]) == pytest.approx(race.PROBLEMS["rosenbrock"].lrs["adam"] * 10 ** -0.5,
                                                              rel=1e-5)
            answer = api(server, f"/api/race?{query}")
            assert after == paths_of(answer)
            losses = page.evaluate("window.explorer.charts.loss.data.datasets.map((d) => d.data.map((p) => p.y))")
            assert losses == [run["losses"] for run in answer["runs"]]

            # A problem's own setting: the gradients' mean in moments, typed in its box.
            page.select_option("#problem", "moments")
            page.wait_for_function("window.explorer.response.problem === 'moments'")
            page.fill("#option-mean", "-1.5")
            page.wait_for_function("window.explorer.response.truth.mean === -1.5")
            query = page.evaluate("window.explorer.query")
            assert parse_qs(query)["mean"] == ["-1.5"]
            # drawn: each run's bias-corrected and raw estimate of the mean against the step
            answer = api(server, f"/api/race?{query}")
            assert answer["truth"]["mean"] == -1.5
            assert drawn_paths(page) == [[f"{run['label']} {key}", [[step + 1, value] for step, value in
                                                                    enumerate(run[key])]]
                                         for run in answer["runs"] for key in ("m_hat", "m")]
            assert errors == []
        finally:
            browser.close()
