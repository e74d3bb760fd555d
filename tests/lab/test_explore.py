"""``adamlab explore``: its JSON API against ``race.run`` and ``trace``, its command, and its page
in a real headless browser (Debian's chromium driven by Playwright)."""

import http.client
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs

import numpy as np
import pytest

from adamlab import files, registry
from adamlab.cli import main
from adamlab.lab import browser, explore, race, trace

from .conftest import BROWSER_ARGS


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
    assert [optimizer["name"] for optimizer in answer["optimizers"]] == list(registry.OPTIMIZERS)
    assert answer["knobs"] == list(registry.KNOBS) and answer["max_steps"] == explore.MAX_STEPS
    rosenbrock = next(problem for problem in answer["problems"] if problem["name"] == "rosenbrock")
    assert rosenbrock["dimensions"] == 2 and rosenbrock["bounds"] == list(race.PROBLEMS["rosenbrock"].bounds)
    assert rosenbrock["optimizers"] == list(race.PROBLEMS["rosenbrock"].lrs)
    assert rosenbrock["steps"] == race.PROBLEMS["rosenbrock"].steps
    # every optimizer's lr, the field's and the others', is the one race.run gives it by default
    ran = race.run("rosenbrock", list(registry.OPTIMIZERS), steps=1)
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
    course = race.PROBLEMS["moments"]
    assert moments["options"] == [{"name": name, "about": option.about, "value": getattr(course, name),
                                   "low": option.low, "high": option.high} for name, option in course.options.items()]
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
    ("problem=quadratic&optimizers=adam,adamz", "unknown optimizer 'adamz'; choose from sgd, momentum"),
    ("problem=quadratic&lr_adamz=0.1", "unknown optimizer 'adamz'"),
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
    # giant numbers: a short message, not int()'s refusal of 5,000 digits nor an overflow
    ("problem=quadratic&steps=" + "9" * 5000, "steps must be a whole number from 1 to 5000, got '99999"),
    ("problem=quadratic&lr=" + "1" * 5000, "lr must be a finite number, got '11111"),
    ("problem=moments&mean=1e308&spread=1e308", "mean must be a number from -1e+100 to 1e+100, got 1e+308"),
    ("problem=moments&spread=1e300", "spread must be a number from 0 to 1e+100, got 1e+300"),
    ("problem=moments&spread=-1", "spread must be a number from 0 to 1e+100, got -1.0"),
    # a knob is named as the request named it, whatever the optimizer calls it
    ("problem=quadratic&beta2=-1", "beta2 must be in [0, 1), got -1.0"),
    ("problem=quadratic&optimizers=rmsprop&beta2=-1", "beta2 must be in [0, 1], got -1.0"),
    ("problem=quadratic&optimizers=momentum&beta1=-1", "beta1 must be >= 0, got -1.0"),
    ("problem=quadratic&optimizers=lion&beta1=1", "beta1 must be in [0, 1), got 1.0"),
    ("problem=quadratic&optimizers=,", "choose at least one optimizer"),
    ("problem=flip&steps=5000&optimizers=sgd,momentum,adagrad,rmsprop,adam,adamw,amsgrad,lion",
     "this race is 160,000 steps of work (16 runs x 5000 steps x 2 a step on flip); the explorer computes "
     "at most 100,000 a request: choose fewer steps or optimizers"),
])
def test_bad_requests_are_400_with_a_message(server, query, message):
    status, content_type, body = get(server, f"/api/race?{query}")
    assert (status, content_type) == (400, "application/json")
    error = json.loads(body)["error"]
    assert message in error and len(error) < 300
    assert "alpha" not in error and "betas" not in error and "momentum must" not in error


@pytest.mark.parametrize("path", ["/nope", "/api/nope", "/static/nope.js", "/static/README.md",
                                  "/static/../explore.py", "/static/%2e%2e/explore.py", "/static/",
                                  "/static/" + "a" * 300 + ".js"])
def test_unknown_paths_are_404(server, path):
    status, content_type, body = get(server, path)
    assert (status, content_type) == (404, "application/json") and json.loads(body)["error"]


def test_the_page_and_its_files_are_served(server):
    status, content_type, page = get(server, "/")
    assert (status, content_type) == (200, "text/html; charset=utf-8")
    for name in ("explore.js", "explore.css", "chart.umd.min.js", "rules.js", "stepper.js", "bias.js", "moments.js",
                 "dying.js", "nav.js", "amsgrad.js", "decay.js", "view.js"):
        assert f'"static/{name}"'.encode() in page
        status, _, body = get(server, f"/static/{name}")
        assert status == 200 and body
    assert get(server, "/static/chart.umd.min.js")[2].startswith(b"/*!\n * Chart.js v4.")
    # every optimizer's step, printed from its maths, as the browser tests run it
    assert get(server, "/static/rules.js")[1:] == ("text/javascript; charset=utf-8", browser.script().encode())


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


def request(server, path: str, host: str | None = "", method: str = "GET", headers=()):
    """The status, headers and JSON body of ``method path`` with the Host header ``host`` ("" for
    the server's own, None for none)."""
    port = server.server_address[1]
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(method, path, skip_host=True)
        if host is not None:
            connection.putheader("Host", host or f"127.0.0.1:{port}")
        for name, value in headers:
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.headers, json.loads(response.read())
    finally:
        connection.close()


@pytest.mark.parametrize("host", ["[::1", "[", "127.0.0.1:abc", "127.0.0.1:99999", "localhost:-1"])
def test_a_malformed_host_header_is_400(server, host):
    status, _, body = request(server, "/api/problems", host)
    assert (status, body) == (400, {"error": f"malformed Host header {host!r}"})


def test_a_host_header_given_twice_is_400(server):
    status, _, body = request(server, "/api/problems", headers=[("Host", "localhost")])
    assert (status, body) == (400, {"error": "give the Host header once, got it 2 times"})


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(server, method):
    status, headers, body = request(server, "/api/problems", method=method)
    assert (status, headers["Allow"]) == (405, "GET")
    assert body == {"error": f"the explorer answers GET only, not {method!r}"}


def test_a_diverged_race_is_valid_json_that_says_so(server):
    status, content_type, body = get(server, "/api/race?problem=quadratic&lr_sgd=1e300")
    assert (status, content_type) == (200, "application/json")
    answer = json.loads(body, parse_constant=lambda name: pytest.fail(f"{name} is not JSON"))
    sgd, adam = answer["runs"][0], answer["runs"][2]
    assert sgd["diverged_at"] == 1 and sgd["losses"][0] == 25.0 and sgd["losses"][1:] == [None] * 8
    assert adam["diverged_at"] is None and None not in adam["losses"]
    assert "sgd (lr 1e+300) diverged at step 1" in answer["notes"][-1]
    assert answer["internals"][0] == {"error": "grads and theta must be finite numbers"}


# --- bounded work: a pool, a queue, a cost cap, a cache, and cancellation ------------------------

#: A race of 40,000 steps of work (several seconds, far more than the tests wait for), different
#: for each ``n`` so that the cache does not answer it.
HEAVY = "/api/race?problem=rosenbrock&steps=5000&optimizers=sgd,momentum,adagrad,rmsprop,adam,adamw,amsgrad,lion&lr={}"


def heavy(n: int) -> str:
    return HEAVY.format(1e-3 * (1 + n / 100))


def send(server, path: str) -> http.client.HTTPConnection:
    """A connection that has sent GET ``path`` and not yet read the answer."""
    connection = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=60)
    connection.request("GET", path)
    return connection


def wait_for(condition, what: str) -> None:
    """Wait until ``condition()`` holds; fail, saying ``what``, if it has not within a minute."""
    deadline = time.monotonic() + 60
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"never happened: {what}")
        time.sleep(0.01)


@pytest.fixture
def small_server():
    """A server with one worker and one place in the queue, closed after the test."""
    server = explore.serve(port=0, workers=1, queue=1)
    yield server
    server.close()


def test_a_flood_of_heavy_races_gets_503s_not_unbounded_work():
    server = explore.serve(port=0, workers=2, queue=2)
    connections = []
    try:
        connections = [send(server, heavy(n)) for n in range(8)]
        # two races run and two wait; the other four are refused at once
        with selectors.DefaultSelector() as selector:
            for connection in connections:
                selector.register(connection.sock, selectors.EVENT_READ, connection)
            answered = []
            while len(answered) < 4:
                events = selector.select(timeout=60)
                assert events, "no 503 within a minute"
                for key, _ in events:
                    selector.unregister(key.fileobj)
                    answered.append(key.data)
        for connection in answered:
            response = connection.getresponse()
            assert (response.status, response.headers["Retry-After"]) == (503, "1")
            assert json.loads(response.read()) == {"error": "the explorer is busy: 2 races are running and 2 "
                                                            "waiting, the most it takes; try again in a moment"}
        assert server.counts["busy"] == 4
        wait_for(lambda: len(server.in_flight) == 4 and server.counts["started"] == 2, "two races running, two waiting")
        # the clients give up: the running races stop, the waiting ones never start
        for connection in connections:
            connection.close()
        wait_for(lambda: not server.in_flight, "every race dropped")
        assert server.counts["cancelled"] == 4 and server.counts["computed"] == 0
        assert get(server, "/api/race?problem=quadratic")[0] == 200  # and it answers again
    finally:
        for connection in connections:
            connection.close()
        server.close()


def test_a_race_whose_client_has_gone_is_not_computed_to_the_end(small_server):
    running = send(small_server, heavy(100))
    wait_for(lambda: small_server.counts["started"] == 1, "the first race started")
    waiting = send(small_server, heavy(101))
    wait_for(lambda: len(small_server.in_flight) == 2, "the second race queued")
    waiting.close()  # dropped from the queue: it never starts
    wait_for(lambda: small_server.counts["cancelled"] == 1, "the waiting race dropped")
    running.close()  # stopped at its next step
    wait_for(lambda: small_server.counts["cancelled"] == 2, "the running race stopped")
    assert small_server.counts["started"] == 1 and small_server.counts["computed"] == 0
    wait_for(lambda: not small_server.in_flight, "the worker free")
    assert get(small_server, "/api/race?problem=quadratic")[0] == 200


def test_a_race_says_how_far_it_has_gone_while_it_computes(small_server):
    query = "problem=flip&optimizers=adam,momentum&steps=600"
    assert api(small_server, f"/api/progress?{query}") == {"state": "none"}  # not asked for yet
    connection = send(small_server, f"/api/race?{query}")
    seen = []

    def running():
        answer = api(small_server, f"/api/progress?{query}")
        seen.append(answer)
        return answer["state"] == "running" and answer["done"] > 0

    wait_for(running, "the flip race's progress")
    answer = seen[-1]
    runs = race.PROBLEMS["flip"].runs(["adam", "momentum"])  # with the other learning rates
    assert answer["total"] == runs * 600 and 0 < answer["done"] < answer["total"]
    assert answer["share"] == pytest.approx(answer["done"] / answer["total"], abs=1 / answer["total"])
    response = connection.getresponse()
    assert response.status == 200 and len(json.loads(response.read())["runs"]) == runs
    connection.close()
    assert api(small_server, f"/api/progress?{query}") == {"state": "done"}  # its answer is kept
    assert get(small_server, "/api/progress?problem=nope")[0] == 400  # checked as /api/race checks it


def test_a_repeated_race_is_answered_from_the_cache(small_server):
    first = get(small_server, "/api/race?problem=rosenbrock&steps=100")
    # the same race with its defaults spelled out is the same race
    spelled = get(small_server, "/api/race?problem=rosenbrock&steps=100&optimizers=sgd,momentum,rmsprop,adam"
                                "&lr_adam=0.05&beta1=")
    again = get(small_server, "/api/race?problem=rosenbrock&steps=100")
    other = get(small_server, "/api/race?problem=rosenbrock&steps=101")
    assert first[0] == 200 and first == spelled == again and other[2] != first[2]
    assert small_server.counts["computed"] == 2 and small_server.counts["cached"] == 2


def test_a_server_closing_stops_its_races(small_server):
    connection = send(small_server, heavy(200))
    try:
        wait_for(lambda: small_server.counts["started"] == 1, "the race started")
        small_server.close()
        wait_for(lambda: small_server.counts["cancelled"] == 1, "the race stopped")
        assert small_server.counts["computed"] == 0
    finally:
        connection.close()


# --- the command -------------------------------------------------------------------------------

def _sigint_as_a_terminal_gives_it():
    """A command started in the background of a shell without job control inherits Ctrl-C
    ignored (POSIX), and Python then keeps it ignored: give the command a terminal's default."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_the_command_serves_until_interrupted():
    command = subprocess.Popen([sys.executable, "-m", "adamlab", "explore", "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_sigint_as_a_terminal_gives_it)
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


@pytest.mark.parametrize("port", ["70000", "-1", "65536", "99999999999999999999"])
def test_a_port_out_of_range_is_one_line_and_status_2(port, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["explore", "--port", port])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == (f"adamlab explore: error: argument --port: must be from 0 to 65535 "
                                       f"(0: any free port), got {int(port)}\n")
    with pytest.raises(ValueError, match="port must be a whole number from 0 to 65535"):
        explore.ExplorerServer(port=int(port))


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
            # loaded, printed: the rules of those the page steps itself, the names of all
            assert page.evaluate("Object.keys(ADAMLAB_RULES)") == [
                name for name, entry in registry.OPTIMIZERS.items() if entry.in_page]
            assert page.evaluate("ADAMLAB_NAMES") == list(registry.OPTIMIZERS)
            first = page.evaluate("window.explorer.response")
            assert first["problem"] == "quadratic"
            assert drawn_paths(page) == paths_of(first) == paths_of(as_json(race.run("quadratic").to_json()))
            headers = page.locator("#internals-table th").all_inner_texts()
            assert {"m", "v", "m_hat", "v_hat", "update", "theta"} <= set(headers)
            # the optimizers to tick are the registry's, each in a colour of its own
            boxes = page.locator("#optimizers input").evaluate_all("(boxes) => boxes.map((box) => box.value)")
            assert boxes == list(registry.OPTIMIZERS)
            colours = page.locator("#optimizers label").evaluate_all("(labels) => labels.map((l) => l.style.color)")
            assert "" not in colours and len(set(colours)) == len(boxes)
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

            # A knob (the server's list of them) is sent once its slider moves.
            draws = page.evaluate("window.explorer.draws")
            page.eval_on_selector("#beta1", """(slider) => {
                slider.value = "0.5";
                slider.dispatchEvent(new Event("input", {bubbles: true}));
            }""")
            page.wait_for_function(f"window.explorer.draws > {draws}")
            assert parse_qs(page.evaluate("window.explorer.query"))["beta1"] == ["0.5"]

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


# --- the step-by-step view, computed in the page ------------------------------------------------

def stepper_rows(page) -> list[dict]:
    return page.evaluate("window.stepper.rows")


def assert_rows_match(rows: list[dict], expected: list[dict]):
    assert len(rows) == len(expected)
    for ours, theirs in zip(rows, expected):
        for key, value in theirs.items():
            if value is not None:
                assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-300), key


def test_the_step_by_step_view_opens_on_the_worked_example_computed_in_the_page(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.stepper.draws >= 1")
    rows = stepper_rows(page)
    assert_rows_match(rows, trace.trace("adam"))  # the float64 reference, as `adamlab trace` prints it
    assert [round(row["param"], 6) for row in rows[:2]] == [0.999, 0.998043]  # the lesson's numbers
    headers = page.locator("#step-table thead th").all_inner_texts()
    assert headers == ["t", "grad", "g", "m", "v", "1-beta1^t", "1-beta2^t", "m_hat", "v_hat", "update", "theta"]
    assert page.locator("#step-table tbody tr").count() == 4 and page.errors == []


def test_the_step_by_step_view_follows_its_inputs_and_keeps_them_in_the_url(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.stepper.draws >= 1")
    page.fill("#step-beta1", "0")
    page.fill("#step-beta2", "0.9")
    page.fill("#step-lr", "0.05")  # the lesson's suggestion
    assert_rows_match(stepper_rows(page), trace.trace("adam", lr=0.05, beta1=0.0, beta2=0.9))
    link = page.evaluate("location.href")
    assert "lr=0.05" in link and "beta1=0" in link
    # a link brings the same table back; RMSprop's beta2 is its alpha
    page.goto(server.url + "#optimizer=rmsprop&grads=1,+-2,+3&theta=2&lr=0.01&beta1=0.9&beta2=0.5")
    page.reload()
    page.wait_for_function("window.stepper.draws >= 1")
    assert page.input_value("#step-optimizer") == "rmsprop"
    assert_rows_match(stepper_rows(page), trace.trace("rmsprop", [1, -2, 3], theta=2.0, lr=0.01, beta2=0.5))
    page.goto(link)
    page.reload()
    page.wait_for_function("window.stepper.draws >= 1")
    assert_rows_match(stepper_rows(page), trace.trace("adam", lr=0.05, beta1=0.0, beta2=0.9))


def parabola_runs(page) -> dict:
    return page.evaluate("Object.fromEntries(Object.entries(window.parabolaView.runs).map(([name, run]) => [name, "
                         "{path: run.path.map(([w]) => w), quantities: run.quantities.map((step) => "
                         "Object.fromEntries(['m', 'v', 'm_hat', 'v_hat'].filter((key) => key in step)"
                         ".map((key) => [key, step[key][0]])))}]))")


def test_the_parabola_plays_adam_against_momentum_as_the_quadratic_race(server, browser_page):
    page = browser_page
    page.goto("about:blank")
    page.goto(server.url + "#lr=0.01")
    page.wait_for_function("window.parabolaView.draws >= 1")
    runs = parabola_runs(page)
    served = race.run("quadratic", ["momentum", "adam"], {"momentum": 0.01, "adam": 0.01}, steps=100)
    for run in served.runs:  # the lesson's race: adamlab's torch optimizers on autograd's gradients
        np.testing.assert_allclose(runs[run.optimizer]["path"], [w for (w,) in run.params], rtol=1e-12, atol=1e-300)
    adam = served.run_of("adam")
    assert_rows_match(runs["adam"]["quantities"], [  # Adam's moments as `adamlab trace` gives them
        {key: row[key] for key in ("m", "v", "m_hat", "v_hat")}
        for row in trace.trace("adam", adam.extra["grads"], theta=5.0, lr=0.01)])
    assert runs["momentum"]["path"][-1] < 1 < 4 < runs["adam"]["path"][-1]  # on one parameter momentum wins
    assert "step 100 of 100" in page.inner_text("#parabola-at")  # the whole run, until played
    page.click("#parabola-play")
    page.wait_for_function("window.parabolaView.playing && window.parabolaView.frame > 5")
    page.click("#parabola-play")
    frame = page.evaluate("window.parabolaView.frame")
    page.click("#parabola-step")
    assert page.evaluate("window.parabolaView.frame") == int(frame) + 1
    page.fill("#parabola-scrub", "12")
    assert page.inner_text("#parabola-at").startswith("step 12 of 100: momentum w = ")
    # the lesson's suggestion, typed into the table's inputs: Adam follows them
    page.fill("#step-beta1", "0")
    page.fill("#step-beta2", "0.9")
    page.fill("#step-lr", "0.05")
    served = race.run("quadratic", ["adam"], {"adam": 0.05}, steps=100, beta1=0.0, beta2=0.9).runs[0]
    np.testing.assert_allclose(parabola_runs(page)["adam"]["path"], [w for (w,) in served.params], rtol=1e-12)
    page.fill("#parabola-steps", "300")
    assert len(parabola_runs(page)["adam"]["path"]) == 301 and "parabola_steps=300" in page.evaluate("location.href")
    draws = page.evaluate("window.parabolaView.draws")
    page.fill("#parabola-steps", "0")
    assert "steps must be a whole number from 1 to 2000" in page.inner_text("#parabola-steps-error")
    assert page.evaluate("window.parabolaView.draws") == draws and page.errors == []


@pytest.mark.parametrize("field, text, message", [
    ("grads", "0.5, x", '"x" is not a finite number'),
    ("grads", "", "type at least one gradient"),
    ("grads", "1e999", "is not a finite number"),
    ("lr", "-1", "lr must be a number in (0, 10]"),
    ("beta2", "1", "beta2 must be a number in [0, 1)"),
    ("theta", "abc", "theta0 must be a finite number"),
])
def test_bad_input_in_the_step_by_step_view_is_said_beside_it_and_the_table_kept(server, browser_page, field, text,
                                                                                 message):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.stepper.draws >= 1")
    before, draws = stepper_rows(page), page.evaluate("window.stepper.draws")
    page.fill(f"#step-{field}", text)
    assert message in page.inner_text(f"#step-{field}-error")
    assert page.get_attribute(f"#step-{field}", "aria-invalid") == "true"
    assert page.evaluate("window.stepper.draws") == draws and stepper_rows(page) == before
    assert "last settings that were valid" in page.inner_text("#step-status")


def test_a_phone_wide_page_has_no_horizontal_overflow(server, browser_page):
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 800})
    try:
        for problem in race.PROBLEMS:
            if problem == "flip":
                continue  # seconds of training; its page is the same layout
            page.goto(server.url)
            page.wait_for_function("window.stepper.draws >= 1 && window.explorer.draws >= 1")
            draws = page.evaluate("window.explorer.draws")
            page.select_option("#problem", problem)
            page.wait_for_function(f"window.explorer.draws > {draws}")
            assert page.evaluate("document.documentElement.scrollWidth") <= 390, problem
    finally:
        page.set_viewport_size({"width": 1280, "height": 720})


def test_the_page_shows_a_network_race_going_as_it_computes(server, browser_page):
    page = browser_page
    page.goto("about:blank")
    page.goto(server.url)
    page.wait_for_function("window.explorer.draws >= 1")
    draws = page.evaluate("window.explorer.draws")
    page.select_option("#problem", "flip")  # seconds of training on the server
    page.wait_for_function("window.explorer.progress !== null && !document.getElementById('progress').hidden")
    assert " of " in page.inner_text("#status") and page.inner_text("#status").endswith(" steps")
    page.wait_for_function(f"window.explorer.draws > {draws}", timeout=120_000)
    assert page.is_hidden("#progress") and page.inner_text("#status") == "" and page.errors == []


# --- the page as files: adamlab explore --export ------------------------------------------------

def test_the_exported_page_computes_its_views_from_file_urls(tmp_path, browser_page, capsys):
    folder = tmp_path / "page"
    assert main(["explore", "--export", str(folder)]) == 0
    assert f"the page is in {folder}" in capsys.readouterr().out
    assert sorted(entry.name for entry in (folder / "static").iterdir()) == [
        "README.md", "amsgrad.js", "bias.js", "chart.umd.min.js", "decay.js", "dying.js", "explore.css",
        "explore.js", "fonts", "formulas.js", "katex.min.css", "katex.min.js", "moments.js", "nav.js", "parabola.js",
        "rules.js",
        "stepper.js", "surface.js", "view.js"]
    assert len(list((folder / "static" / "fonts").glob("KaTeX_*.woff2"))) == 20
    assert (folder / "static" / "rules.js").read_text() == browser.script()  # printed from the maths
    page = browser_page
    page.errors.clear()
    page.goto((folder / "index.html").as_uri())
    page.wait_for_function("window.stepper.draws >= 1 && window.bias.draws >= 1 && window.moments.draws >= 1 "
                           "&& window.dying.draws >= 1 && window.amsgradView.draws >= 1 && window.decayView.draws >= 1 "
                           "&& window.surfaceView.draws >= 1 && window.parabolaView.draws >= 1 "
                           "&& window.explorer.offline && window.formulas.typeset >= 7")  # every view in the page
    assert_rows_match(stepper_rows(page), trace.trace("adam"))
    assert page.is_visible("#server-note") and not page.is_visible("main")  # the races need the server
    page.fill("#step-lr", "0.05")
    assert_rows_match(stepper_rows(page), trace.trace("adam", lr=0.05))
    assert "lr=0.05" in page.evaluate("location.href") and page.errors == []


def test_an_export_replaces_only_an_export(tmp_path, capsys):
    folder = tmp_path / "page"
    assert main(["explore", "--export", str(folder)]) == 0
    (folder / "static" / "explore.css").write_text("stale")
    assert main(["explore", "--export", str(folder)]) == 0  # an earlier export: written afresh
    assert (folder / "static" / "explore.css").read_bytes() == (explore.STATIC / "explore.css").read_bytes()
    (folder / "notes.txt").write_text("mine")  # something of someone else's: never replaced
    capsys.readouterr()
    assert main(["explore", "--export", str(folder)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "is not a page adamlab explore --export wrote" in error
    assert (folder / "notes.txt").read_text() == "mine"
    other = tmp_path / "other"
    other.mkdir()
    (other / "index.html").write_text("<p>a course page</p>")
    assert main(["explore", "--export", str(other)]) == 2
    assert (other / "index.html").read_text() == "<p>a course page</p>"
    assert main(["explore", "--export", str(tmp_path / "missing" / "page")]) == 2


def test_the_bias_correction_view_is_adams_step_and_follows_its_betas(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.bias.draws >= 1")
    shown = [row for row in page.evaluate("window.bias.rows") if row["step"] in trace.BIAS_TABLE_STEPS]
    assert_rows_match(shown, trace.bias_table())
    assert page.locator("#bias-table tbody tr").first.inner_text().split() == ["1", "10", "1000"]  # the lesson's
    page.fill("#bias-beta2", "0.99")
    shown = [row for row in page.evaluate("window.bias.rows") if row["step"] in trace.BIAS_TABLE_STEPS]
    assert_rows_match(shown, trace.bias_table(0.9, 0.99))
    assert "bias_beta2=0.99" in page.evaluate("location.href")
    draws = page.evaluate("window.bias.draws")
    page.fill("#bias-beta1", "1.5")
    assert "beta1 must be a number in [0, 1)" in page.inner_text("#bias-beta1-error")
    assert page.evaluate("window.bias.draws") == draws and page.errors == []


def test_the_moment_generating_function_view_is_the_maths_and_adams_estimates(server, browser_page):
    from adamlab.maths import moments

    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.moments.draws >= 1")
    page.fill("#mgf-mean", "-0.3")
    page.fill("#mgf-spread", "2")
    for point in page.evaluate("window.moments.curve"):
        assert point["M"] == pytest.approx(moments.normal_mgf(point["t"], mean=-0.3, spread=2.0), rel=1e-12)
    grads = page.evaluate("window.moments.grads")
    assert len(grads) == 200 and abs(sum(grads) / 200 + 0.3) < 0.5  # drawn from N(-0.3, 4)
    assert_rows_match(page.evaluate("window.moments.rows"), [
        {key: row[key] for key in ("step", "m", "v", "m_hat", "v_hat")} for row in trace.trace("adam", grads)])
    assert "M''(0) = 4.09" in page.inner_text("#mgf-numbers") and "mgf_spread=2" in page.evaluate("location.href")
    page.locator("#mgf-mean-slider").fill("1.5")  # the slider sets the input, and the picture follows
    assert page.input_value("#mgf-mean") == "1.5" and "M'(0) = 1.5" in page.inner_text("#mgf-numbers")
    page.fill("#mgf-mean", "-0.3")  # the input moves the slider
    assert page.input_value("#mgf-mean-slider") == "-0.3"
    draws = page.evaluate("window.moments.draws")
    page.fill("#mgf-spread", "-1")
    assert "spread must be a number in [0, 100]" in page.inner_text("#mgf-spread-error")
    assert page.evaluate("window.moments.draws") == draws and page.errors == []


def test_adagrads_dying_learning_rate_view_is_the_optimizers_maths(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.dying.draws >= 1")
    page.fill("#dying-grad", "0.5")
    page.fill("#dying-lr", "0.1")
    runs = page.evaluate("window.dying.runs")
    for name in ("adagrad", "rmsprop", "adam"):
        expected = trace.trace(name, [0.5] * 10_000, theta=0.0, lr=0.1)
        for t in (1, 10, 100, 1000, 10_000):
            assert runs[name][t - 1]["effective"] == pytest.approx(expected[t - 1]["update"] / 0.5, rel=1e-12), (name, t)
    assert runs["adagrad"][99]["sum"] == pytest.approx(100 * 0.25, rel=1e-12)
    assert runs["adagrad"][9_999]["effective"] == pytest.approx(0.1 / (0.5 * 100), rel=1e-6)  # lr / sqrt(t g^2)
    assert runs["adam"][9_999]["effective"] == pytest.approx(0.1 / 0.5, rel=1e-6)  # Adam's step stays lr
    assert "dying_lr=0.1" in page.evaluate("location.href")
    draws = page.evaluate("window.dying.draws")
    page.fill("#dying-grad", "0")
    assert "other than 0" in page.inner_text("#dying-grad-error")
    assert page.evaluate("window.dying.draws") == draws and page.errors == []


def test_the_navigation_names_every_view_and_keeps_the_settings_in_the_url(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.stepper.draws >= 1 && window.bias.draws >= 1")
    buttons = page.locator("nav button")
    assert buttons.all_inner_texts() == ["One step at a time", "Bias correction", "Moment generating function",
                                         "AdaGrad's dying rate", "AMSGrad's fix", "L2 against AdamW", "Races on surfaces",
                                         "Momentum vs Adam on a network", "Races"]
    page.fill("#step-lr", "0.02")
    before = page.evaluate("location.href")
    for view in buttons.evaluate_all("(buttons) => buttons.map((button) => button.dataset.view)"):
        page.click(f"nav button[data-view={view}]")
        assert page.evaluate(f"document.getElementById('{view}').getBoundingClientRect().top") < 50, view
    after = page.evaluate("location.href")
    assert after == before and "lr=0.02" in after and "bias_beta2=0.999" in after  # every view's settings
    assert page.input_value("#problem") == "flip"  # the network view is the server's flip race
    page.keyboard.press("Shift+Tab")  # the buttons are buttons: reachable and pressed from the keyboard
    assert page.errors == []


def test_odd_settings_in_a_link_fall_back_to_the_defaults(server, browser_page):
    page = browser_page
    page.errors.clear()
    for name in ("__proto__", "toString", "no-such-optimizer"):
        page.goto(f"{server.url}#optimizer={name}&grads=0.5")
        page.reload()
        page.wait_for_function("window.stepper.draws >= 1")
        assert page.input_value("#step-optimizer") == "adam"
    assert page.errors == []


def test_quantities_without_a_trace_column_are_shown_too_and_betas_follow_the_optimizer(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.stepper.draws >= 1")
    page.select_option("#step-optimizer", "lion")
    headers = page.locator("#step-table thead th").all_inner_texts()
    assert set(stepper_rows(page)[0]) <= set(headers) | set(trace.COLUMNS)  # every quantity has a column
    assert page.input_value("#step-beta2") == "0.99"  # Lion's own default, not Adam's
    page.select_option("#step-optimizer", "sgd")  # no betas: their inputs are off and never refuse
    assert page.is_disabled("#step-beta1") and page.is_disabled("#step-beta2")
    draws = page.evaluate("window.stepper.draws")
    page.fill("#step-grads", "1, 2")
    assert page.evaluate("window.stepper.draws") == draws + 1


def test_an_export_never_takes_a_folder_of_that_name_for_its_own(tmp_path):
    folder = tmp_path / "page"
    explore.export(folder)
    (folder / "index.html").unlink()
    (folder / "index.html").mkdir()  # someone's folder where the page's file was
    (folder / "index.html" / "thesis.tex").write_text("mine")
    with pytest.raises(ValueError, match="is not a page adamlab explore --export wrote"):
        explore.export(folder)
    assert (folder / "index.html" / "thesis.tex").read_text() == "mine"
    cut_short = tmp_path / "cut"
    cut_short.mkdir()
    (cut_short / explore.EXPORT_MARK).write_text("written by adamlab explore --export\n")
    explore.export(cut_short)  # an export cut short after its mark: adamlab's, written afresh
    assert (cut_short / "index.html").is_file()


def test_an_export_that_fails_leaves_the_earlier_one_and_nothing_else(tmp_path, monkeypatch):
    folder = tmp_path / "page"
    explore.export(folder)
    before = {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()}
    assert oct(folder.stat().st_mode & 0o777) == oct(0o777 & ~files.umask())  # a page, not a private folder
    written = []

    def failing(name):  # the disk fills up half way through the page's files
        if len(written) == 5:
            raise OSError(28, "No space left on device")
        written.append(name)
        return b"new"

    monkeypatch.setattr(explore, "_page_file", failing)
    with pytest.raises(OSError, match="No space left"):
        explore.export(folder)
    assert {path.relative_to(folder): path.read_bytes() for path in folder.rglob("*") if path.is_file()} == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["page"]  # no partial folder left behind


def test_an_export_killed_half_way_is_cleared_by_the_next(tmp_path):
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead, alive = int(finished.stdout), os.getpid()  # a process that has exited, and this one
    debris = {pid: tmp_path / f".page.{pid}.abcd1234.partial" for pid in (dead, alive)}
    for folder in debris.values():
        (folder / "static").mkdir(parents=True)
        (folder / explore.EXPORT_MARK).write_text("written by adamlab explore --export\n")
    unmarked = tmp_path / f".page.{dead}.efgh5678.partial"
    unmarked.mkdir()  # not marked: perhaps not an export's at all
    explore.export(tmp_path / "page")
    assert not debris[dead].exists() and debris[alive].exists() and unmarked.exists()


def test_two_exports_at_once_each_write_a_folder_of_their_own(tmp_path):
    import concurrent.futures

    folder = tmp_path / "page"
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = list(pool.map(lambda _: explore.export(folder), range(2)))
    assert results == [folder, folder] and (folder / "static" / "rules.js").read_text() == browser.script()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["page"]


def test_an_export_on_a_static_web_host_says_the_races_need_the_server(tmp_path, browser_page):
    import functools
    import http.server
    import threading

    folder = explore.export(tmp_path / "page")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=host.serve_forever, daemon=True).start()
    try:
        page = browser_page
        page.errors.clear()
        page.goto(f"http://127.0.0.1:{host.server_address[1]}/index.html")
        page.wait_for_function("window.stepper.draws >= 1 && window.explorer.offline")
        assert page.is_visible("#server-note") and page.errors == []
    finally:
        host.shutdown()
        host.server_close()


def test_amsgrads_fix_is_raced_in_the_page_as_the_server_races_it(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.amsgradView.draws >= 1")
    paths = page.evaluate("window.amsgradView.paths")
    served = {run.optimizer: run for run in race.run("amsgrad", ["adam", "amsgrad"]).runs}
    for name in ("adam", "amsgrad"):
        expected = [x for (x,) in served[name].params]
        assert len(paths[name]) == len(expected) == 3001
        np.testing.assert_allclose(paths[name], expected, rtol=1e-12, atol=1e-15)
    assert paths["adam"][-1] > 0.9 and paths["amsgrad"][-1] < -0.9  # the lesson: Adam drifts, AMSGrad finds -1
    page.fill("#amsgrad-lr", "0.05")
    served = race.run("amsgrad", ["adam"], lrs={"adam": 0.05}).runs[0]
    np.testing.assert_allclose(page.evaluate("window.amsgradView.paths.adam"), [x for (x,) in served.params],
                               rtol=1e-12, atol=1e-15)
    assert "amsgrad_lr=0.05" in page.evaluate("location.href")
    page.fill("#amsgrad-lr", "fast")
    assert "lr must be a number in (0, 10]" in page.inner_text("#amsgrad-lr-error") and page.errors == []


def test_l2_against_adamw_is_raced_in_the_page_as_the_server_races_it(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.decayView.draws >= 1")
    paths = page.evaluate("window.decayView.paths")
    served = {run.optimizer: run for run in race.run("weight-decay", ["adam", "adamw"]).runs}
    for name in ("adam", "adamw"):
        np.testing.assert_allclose(paths[name], served[name].params, rtol=1e-12, atol=1e-15)
    adam, adamw = paths["adam"][-1], paths["adamw"][-1]
    assert adamw[0] == pytest.approx(adamw[1], rel=1e-6) and abs(adam[0]) > 0.5 > 1e-3 > abs(adam[1])  # the lesson
    page.fill("#decay-wd", "0.3")
    served = race.run("weight-decay", ["adamw"], weight_decay=0.3).runs[0]
    np.testing.assert_allclose(page.evaluate("window.decayView.paths.adamw"), served.params, rtol=1e-12, atol=1e-15)
    assert "decay_wd=0.3" in page.evaluate("location.href")
    page.fill("#decay-wd", "-1")
    assert "weight decay must be a number in [0, 10]" in page.inner_text("#decay-wd-error") and page.errors == []


def test_a_long_list_of_gradients_shows_its_first_rows_and_where_theta_ends(server, browser_page):
    page = browser_page
    page.goto(server.url)
    page.wait_for_function("window.stepper.draws >= 1")
    grads = [0.5 if t % 2 else -0.25 for t in range(1000)]
    page.fill("#step-grads", ", ".join(map(str, grads)))
    rows = stepper_rows(page)
    assert len(rows) == 1000 and page.locator("#step-table tbody tr").count() == 100
    assert_rows_match(rows, trace.trace("adam", grads))
    caption = page.inner_text("#step-table caption")
    assert "the first 100 of 1000 steps; theta ends at " in caption
    assert float(caption.rsplit("theta ends at ", 1)[1].rstrip(")")) == pytest.approx(rows[-1]["param"], rel=1e-6)


def test_every_views_formulas_are_typeset_with_the_vendored_katex(server, browser_page):
    page = browser_page
    failed_fonts = []
    page.on("requestfailed", lambda request: failed_fonts.append(request.url))
    page.goto(server.url)
    page.wait_for_function("window.formulas && window.formulas.typeset >= 1")
    formulas = page.locator("[data-tex]")
    assert formulas.count() == page.evaluate("window.formulas.typeset") == 7  # one a view computed in the page
    for index in range(formulas.count()):
        formula = formulas.nth(index)
        assert formula.locator(".katex-html").count() == 1 and formula.locator("math").count() == 1  # MathML too
    page.wait_for_function("document.fonts.status === 'loaded'")
    assert page.evaluate("[...document.fonts].some((font) => font.family.includes('KaTeX') && font.status === 'loaded')")
    status, content_type, _ = get(server, "/static/fonts/KaTeX_Main-Regular.woff2")
    assert (status, content_type) == (200, "font/woff2") and failed_fonts == [] and page.errors == []
    assert get(server, "/static/fonts/../explore.js")[0] == 404 and get(server, "/static/fonts")[0] == 404
