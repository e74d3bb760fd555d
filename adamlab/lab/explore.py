"""The explorer: a local web page of sliders over the races, and the small JSON API it draws from.

Every number the page shows is computed here, by :func:`adamlab.lab.race.run` (adamlab's torch
optimizers) and :func:`adamlab.lab.trace.trace` (adamlab's float64 reference maths); the page's
script only asks and draws. The server is the standard library's ``ThreadingHTTPServer``.

The API:

Listening on loopback (the default), it answers only requests addressed to a loopback name (a
403 otherwise), so that no other site can reach it through a name of its own.

``GET /``
    The page. ``GET /static/<file>``: its script, style sheet and the vendored Chart.js.
``GET /api/problems``
    ``{"problems": [...], "optimizers": [...], "knobs": [...], "max_steps": 5000}``; each problem
    has its name, title-like summary, dimensions, default steps, start, bounds (2-D: x_low,
    x_high, y_low, y_high, else null), knob_defaults, its default field of optimizers and
    ``lrs``: every optimizer's learning rate on it when none is given, and ``options``: its own
    settings, ``[{"name", "about", "value"}, ...]``.
``GET /api/race?problem=P``
    ``race.run(P, ...).to_json()`` plus ``dimensions``, ``contours`` (2-D problems with bounds: the
    loss's level lines, ``[{"level": L, "lines": [[[x, y], ...], ...]}, ...]``) and ``internals``
    (1-D problems: one entry per run, null where none, else ``{"rows": trace rows, "parts_at":
    the first step where the trace's parameter differs from the race's, or null}``). Optional
    parameters: ``optimizers=a,b`` (default: the problem's field); ``steps`` (1 to 5000; default:
    the problem's); ``lr`` (every chosen optimizer's learning rate) and ``lr_<optimizer>`` (one
    optimizer's, over ``lr``), each left out meaning the problem's default; ``beta1``, ``beta2``,
    ``eps``, ``weight_decay`` (left out or empty: each optimizer's or the problem's default); the
    problem's own options by name (moments: ``mean``, ``spread``).

A bad request (a missing or unknown problem, an unknown optimizer or parameter, a value that is
not a number or out of range) is a 400 with ``{"error": message}``; an unknown path a 404.
Numbers that are not finite (a diverged run, a problem with no loss) are sent as null.
"""

import errno
import functools
import ipaddress
import json
import math
import re
import socket
import sys
import threading
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

import contourpy
import numpy as np
import torch

from . import race, trace

MAX_STEPS = 5000
#: The page's files; only these suffixes are served, with these types.
STATIC = resources.files(__package__) / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8"}


class HTTPError(Exception):
    """A request the API answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bad_request(message: str) -> HTTPError:
    return HTTPError(400, message)


# --- the API's answers -------------------------------------------------------------------------

def default_lrs(problem: str) -> dict[str, float]:
    """Every optimizer's learning rate on ``problem`` when none is given."""
    return {name: race.PROBLEMS[problem].lr(name) for name in race.OPTIMIZERS}


def problems() -> dict:
    """The answer to ``/api/problems``: what the page needs to build its controls."""
    return {
        "problems": [{"name": name, "summary": course.summary, "dimensions": course.dimensions,
                      "steps": course.steps, "start": course.start, "bounds": course.bounds,
                      "knob_defaults": course.knob_defaults, "optimizers": list(course.lrs),
                      "lrs": default_lrs(name),
                      "options": [{"name": option, "about": about, "value": getattr(course, option)}
                                  for option, about in course.options.items()]}
                     for name, course in race.PROBLEMS.items()],
        "optimizers": [{"name": name, "summary": racer.summary} for name, racer in race.OPTIMIZERS.items()],
        "knobs": list(race.KNOBS),
        "max_steps": MAX_STEPS,
    }


def _one(query: dict[str, list[str]], name: str) -> str | None:
    """The single value of a query parameter, None when absent or empty."""
    values = query.get(name, [])
    if len(values) > 1:
        raise bad_request(f"give {name} once, got it {len(values)} times")
    if not values or not values[0].strip():
        return None
    return values[0].strip()


def _number(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise bad_request(f"{name} must be a number, got {text!r}") from None
    if not math.isfinite(value):
        raise bad_request(f"{name} must be a finite number, got {text!r}")
    return value


def race_arguments(query: dict[str, list[str]]) -> dict:
    """``race.run``'s keyword arguments from ``/api/race``'s query, checked as far as the query
    alone can be (``race.run`` checks the rest and the optimizers check their ranges)."""
    lr_names = {f"lr_{name}" for name in race.OPTIMIZERS}
    option_names = {option for course in race.PROBLEMS.values() for option in course.options}
    known = {"problem", "optimizers", "steps", "lr", *race.KNOBS, *lr_names, *option_names}
    for name in query:
        if name not in known:
            # an lr_ of an unknown optimizer deserves the optimizer's name, not the parameter's
            if name.startswith("lr_"):
                raise bad_request(f"unknown optimizer {name[3:]!r} in {name}; choose from "
                                  f"{', '.join(race.OPTIMIZERS)}")
            raise bad_request(f"unknown parameter {name!r}; choose from problem, optimizers, steps, lr, "
                              f"lr_<optimizer>, {', '.join(race.KNOBS)} or a problem's option "
                              f"({', '.join(sorted(option_names))})")
    problem = _one(query, "problem")
    if problem is None:
        raise bad_request(f"problem is required; choose from {', '.join(race.PROBLEMS)}")
    if problem not in race.PROBLEMS:
        raise bad_request(f"unknown problem {problem!r}; choose from {', '.join(race.PROBLEMS)}")
    optimizers = _one(query, "optimizers")
    optimizers = [name.strip() for name in optimizers.split(",") if name.strip()] if optimizers else None
    arguments = {"problem": problem, "optimizers": optimizers}

    steps = _one(query, "steps")
    if steps is not None:
        if not re.fullmatch("[0-9]+", steps) or not 1 <= int(steps) <= MAX_STEPS:
            raise bad_request(f"steps must be a whole number from 1 to {MAX_STEPS}, got {steps!r}")
        arguments["steps"] = int(steps)

    lrs = {}
    lr = _one(query, "lr")
    if lr is not None:
        lrs = dict.fromkeys(optimizers or race.PROBLEMS[problem].lrs, _number("lr", lr))
    for name in sorted(lr_names & set(query)):
        text = _one(query, name)
        if text is not None:
            lrs[name[3:]] = _number(name, text)
    arguments["lrs"] = lrs
    for knob in race.KNOBS:
        text = _one(query, knob)
        arguments[knob] = None if text is None else _number(knob, text)
    # another problem's option is race.run's to refuse, naming the problem's own
    options = {name: _one(query, name) for name in sorted(option_names & set(query))}
    arguments["options"] = {name: _number(name, text) for name, text in options.items() if text is not None}
    return arguments


@functools.cache
def contours(problem: str, levels: int = 12, points: int = 121) -> list[dict]:
    """Level lines of ``problem``'s loss over its bounds, at log-spaced levels.

    Log-spaced because the interesting losses (Rosenbrock's valley floor against its walls) span
    several decades. Empty when the loss is not positive anywhere or flat (nothing to draw)."""
    course = race.PROBLEMS[problem]
    x_low, x_high, y_low, y_high = course.bounds
    x, y = np.meshgrid(np.linspace(x_low, x_high, points), np.linspace(y_low, y_high, points))
    grid = torch.tensor(np.stack([x.ravel(), y.ravel()], axis=1), dtype=torch.float64)
    with torch.no_grad():
        z = torch.func.vmap(course.loss)(grid).reshape(x.shape).numpy()
    positive = z[np.isfinite(z) & (z > 0)]
    if positive.size == 0 or positive.min() == positive.max():
        return []
    # from just above the floor to below the highest corners, which only crowd the edges
    low, high = np.quantile(positive, [0.02, 0.95])
    generator = contourpy.contour_generator(x, y, z)
    return [{"level": float(level),
             "lines": [np.round(line, 5).tolist() for line in generator.lines(level) if len(line) > 1]}
            for level in np.geomspace(low, high, levels)]


def internals(result: race.Race) -> list[dict | None]:
    """For a 1-D race, each run's step-by-step internals from ``trace`` (None where unavailable).

    The trace replays the gradients the run saw through adamlab's reference maths at a constant
    learning rate. Where a problem also schedules the learning rate or clamps w, the trace's
    parameter parts from the race's; ``parts_at`` says at which step, so the page can say so."""
    course = race.PROBLEMS[result.problem]
    out = []
    for run in result.runs:
        traceable = trace.OPTIMIZERS.get(run.optimizer)
        if course.dimensions != 1 or traceable is None or "grads" not in run.extra:
            out.append(None)
            continue
        # the race sets a knob on every optimizer it applies to; the trace refuses one that does not
        knobs = {knob: value for knob, value in result.knobs.items()
                 if value is not None and (knob == "weight_decay" or knob in traceable.knobs)}
        try:
            rows = trace.trace(run.optimizer, run.extra["grads"], theta=run.params[0][0], lr=run.lr, **knobs)
        except ValueError as error:  # e.g. a diverged run's infinite gradients
            out.append({"error": str(error)})
            continue
        parts_at = next((row["step"] for row, param in zip(rows, run.params[1:])
                         if not math.isclose(row["param"], param[0], rel_tol=1e-9, abs_tol=1e-12)), None)
        out.append({"rows": rows, "parts_at": parts_at})
    return out


def race_json(query: dict[str, list[str]]) -> dict:
    """The answer to ``/api/race``."""
    arguments = race_arguments(query)
    try:
        result = race.run(arguments.pop("problem"), arguments.pop("optimizers"), arguments.pop("lrs"),
                          arguments.pop("steps", None), options=arguments.pop("options"), **arguments)
    except ValueError as error:  # race.run's and the optimizers' own messages name the bad value
        raise bad_request(str(error)) from None
    course = race.PROBLEMS[result.problem]
    answer = {**result.to_json(), "dimensions": course.dimensions, "contours": None, "internals": None}
    if course.dimensions == 2 and course.bounds is not None:
        answer["contours"] = contours(result.problem)
    if course.dimensions == 1:
        answer["internals"] = internals(result)
    return answer


def finite(value):
    """``value`` with every NaN and infinity replaced by None: JSON has no such numbers."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {key: finite(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [finite(item) for item in value]
    return value


# --- the server --------------------------------------------------------------------------------

def answer(path: str) -> tuple[int, str, bytes]:
    """The status, content type and body for a GET of ``path``; HTTPError for a 400 or 404."""
    url = urlsplit(path)
    if url.path == "/":
        return 200, *static_file("explore.html")
    if url.path.startswith("/static/"):
        return 200, *static_file(url.path.removeprefix("/static/"))
    if url.path == "/api/problems":
        return 200, *as_json(problems())
    if url.path == "/api/race":
        return 200, *as_json(race_json(parse_qs(url.query, keep_blank_values=True)))
    raise HTTPError(404, f"no such page {url.path!r}; the API is /api/problems and /api/race")


def static_file(name: str) -> tuple[str, bytes]:
    """The content type and bytes of the page's file ``name``: only plain names of files in the
    static folder (no "..", no sub-folders) with a suffix the page uses."""
    suffix = name[name.rfind("."):] if "." in name else ""
    entry = STATIC / name
    if "/" in name or "\\" in name or name.startswith(".") or suffix not in _TYPES or not entry.is_file():
        raise HTTPError(404, f"no such file {name!r}")
    return _TYPES[suffix], entry.read_bytes()


def as_json(payload) -> tuple[str, bytes]:
    return "application/json", json.dumps(finite(payload), allow_nan=False).encode()


class Handler(BaseHTTPRequestHandler):
    server_version = "adamlab-explore"

    def log_message(self, format, *args):
        """Quiet: a line per request would bury the URL the command printed."""

    def do_GET(self):
        try:
            self.server.check_host(self.headers.get("Host"))
            status, content_type, body = answer(self.path)
        except HTTPError as error:
            status, content_type, body = error.status, *as_json({"error": str(error)})
        except Exception as error:  # a bug: say so to the page and leave the traceback on the console
            traceback.print_exc(file=sys.stderr)
            status, content_type, body = 500, *as_json({"error": f"internal error: {error!r}"})
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")  # the page and its numbers are always fresh
            self.end_headers()
            self.wfile.write(body)
        except ConnectionError:  # the page moved on to newer settings and dropped this request
            pass


class ExplorerServer(ThreadingHTTPServer):
    """The explorer's HTTP server, bound to ``host``:``port`` (port 0: any free port).

    A port in use or a host it cannot listen on is a ValueError saying so."""

    daemon_threads = True  # a slow race in flight does not hold up Ctrl-C

    def __init__(self, host: str = "127.0.0.1", port: int = 8765):
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), Handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ValueError(f"port {port} on {host} is in use; pick another with --port "
                                 f"(0: any free port)") from None
            raise ValueError(f"cannot listen on {host} port {port}: {error.strerror or error}") from None

    def check_host(self, host: str | None) -> None:
        """Refuse (403) a request whose Host header names another machine, when listening on
        loopback: a web page elsewhere could otherwise point a name of its own at 127.0.0.1 and
        read the answers (DNS rebinding)."""
        if not is_loopback(self.server_address[0]):
            return  # told to listen beyond this machine: any name may reach it
        name = urlsplit(f"//{host}").hostname if host else None
        if name is None or not is_loopback(name):
            raise HTTPError(403, f"this explorer answers to {self.url} only, not to Host {host!r}")

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def close(self) -> None:
        """Stop :func:`serve`'s thread and release the port."""
        self.shutdown()
        self.server_close()


def serve(host: str = "127.0.0.1", port: int = 8765) -> ExplorerServer:
    """Start the explorer serving in a background thread; ``close()`` it when done.

    >>> server = serve(port=0)
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.close()
    """
    server = ExplorerServer(host, port)
    threading.Thread(target=server.serve_forever, name="adamlab-explore", daemon=True).start()
    return server


def is_loopback(host: str) -> bool:
    """Whether ``host`` is this machine only (127.0.0.0/8, ::1 or localhost).

    >>> is_loopback("127.0.0.1"), is_loopback("0.0.0.0"), is_loopback("localhost")
    (True, False, True)
    """
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        return False
