"""The explorer: a local web page of sliders over the races, and the small JSON API it draws from.

Every number the page shows is computed here, by :func:`adamlab.lab.race.run` (adamlab's torch
optimizers) and :func:`adamlab.lab.trace.trace` (adamlab's float64 reference maths); the page's
script only asks and draws. The server is the standard library's ``ThreadingHTTPServer``.

The API:

Listening on loopback (the default), it answers only requests addressed to a loopback name (a
403 otherwise), so that no other site can reach it through a name of its own.

``GET /``
    The page. ``GET /static/<file>``: its script, style sheet and the vendored Chart.js, and
    ``rules.js``, every optimizer's step in JavaScript printed from its maths
    (``adamlab.lab.browser``), for the views the page computes itself.
``GET /api/problems``
    ``{"problems": [...], "optimizers": [...], "knobs": [...], "trace_columns": {...}, "max_steps":
    5000, "max_work": 100000}``: the optimizers (name, summary) and knobs of adamlab's registry, the
    trace's columns (quantity: header) for the internals table; each problem has its name,
    title-like summary, dimensions, default steps, start, bounds (2-D: x_low, x_high, y_low,
    y_high, else null), knob_defaults, its default field of
    optimizers and ``lrs``: every optimizer's learning rate on it when none is given, and
    ``options``: its own settings, ``[{"name", "about", "value", "low", "high"}, ...]``.
``GET /api/race?problem=P``
    ``race.run(P, ...).to_json()`` plus ``dimensions``, ``contours`` (2-D problems with bounds: the
    loss's level lines, ``[{"level": L, "lines": [[[x, y], ...], ...]}, ...]``) and ``internals``
    (1-D problems: one entry per run, null where none, else ``{"rows": trace rows, "parts_at":
    the first step where the trace's parameter differs from the race's, or null}``). Optional
    parameters: ``optimizers=a,b`` (default: the problem's field); ``steps`` (1 to 5000; default:
    the problem's); ``lr`` (every chosen optimizer's learning rate) and ``lr_<optimizer>`` (one
    optimizer's, over ``lr``), each left out meaning the problem's default; ``beta1``, ``beta2``,
    ``eps``, ``weight_decay`` (left out or empty: each optimizer's or the problem's default); the
    problem's own options by name, within their ranges (moments: ``mean``, ``spread``).

``GET /api/progress?problem=P...``
    How far the race of the same query has gone while ``/api/race`` computes it, for the page to
    show: ``{"state": "running", "done": steps, "total": steps, "share": 0 to 1}`` (steps of one
    run, over all its runs), ``{"state": "done"}`` once its answer is kept, or ``{"state":
    "none"}``. The flip network's races take seconds: the page asks every few tenths of a second.

A bad request (a missing or unknown problem, an unknown optimizer or parameter, a value that is
not a number or out of range, a malformed Host header, a race of more work than ``max_work``) is
a 400 with ``{"error": message}``; an unknown path a 404; a method other than GET a 405.
Numbers that are not finite (a diverged run, a problem with no loss) are sent as null.

Bounds on the work. Races are computed by a pool of ``workers`` threads (2); at most ``queue`` (4)
more wait for one, and a race beyond those is answered at once with a 503 and ``Retry-After: 1``.
A race's work (runs x steps x the problem's work per step, :attr:`race.Plan.work`) is at most
:data:`MAX_WORK`. The last ``cache`` (32) answers are kept, by the race's arguments with every
default filled in, and sent again without computing. A connection that sends nothing for a
minute is closed.

Cancellation. While a race waits or runs, its request's thread watches the connection; once the
client has closed it (the page moved on, a script gave up) a waiting race is dropped before it
starts and a running one stops at its next optimizer step (moments: at its next optimizer), and
nothing is sent. Not cancelled: the few milliseconds of contours and traces after the last step,
and an answer already being written. A client that only half-closes its connection (shuts down
its sending side) while it still waits looks the same and is taken as gone; browsers and HTTP
libraries do not do that. ``ExplorerServer.counts`` counts the races
started, computed and cancelled, the answers sent from the cache and the requests refused as busy.
"""

import errno
import functools
import glob
import ipaddress
import json
import math
import os
import re
import select
import shutil
import socket
import sys
import tempfile
import threading
import traceback
from collections import Counter, OrderedDict
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import contourpy
import numpy as np
import torch

from .. import files, registry
from . import browser, race, trace

MAX_STEPS = 5000
#: The most work one request may ask for (see race.Plan.work): every problem's default race and
#: every optimizer for 2000 steps of flip fit; eight of them for 5000 steps of flip do not.
MAX_WORK = 100_000
#: Races computed at once, races waiting beyond those (then 503), answers kept for repeats.
WORKERS, QUEUE, CACHE = 2, 4, 32
#: How often a request's thread looks at its connection while its race waits or runs (seconds).
POLL_S = 0.05
#: The page's files; only these suffixes are served, with these types.
STATIC = resources.files(__package__) / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".woff2": "font/woff2", ".md": "text/markdown; charset=utf-8"}


def page_files() -> list[str]:
    """The page's files below static/, as paths relative to it: its scripts, style sheets and
    notes, the vendored libraries and KaTeX's fonts (``fonts/``), and the printed ``rules.js``."""
    names = [entry.name for entry in STATIC.iterdir() if entry.is_file() and entry.suffix in _TYPES
             and entry.name != "explore.html"]
    fonts = [f"fonts/{entry.name}" for entry in (STATIC / "fonts").iterdir() if entry.suffix == ".woff2"]
    return sorted(names + fonts + ["rules.js"])


def _page_file(name: str) -> bytes:
    return browser.script().encode() if name == "rules.js" else (STATIC / name).read_bytes()


class HTTPError(Exception):
    """A request the API answers with ``status`` and ``{"error": message}``."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def bad_request(message: str) -> HTTPError:
    return HTTPError(400, message)


def quoted(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, shortened when long: an error need not echo 5,000 digits.

    >>> quoted("1" * 100)
    "'11111111111111111111...' (100 characters)"
    """
    return repr(text) if len(text) <= limit else f"{text[:limit // 2] + '...'!r} ({len(text)} characters)"


# --- the API's answers -------------------------------------------------------------------------

def default_lrs(problem: str) -> dict[str, float]:
    """Every optimizer's learning rate on ``problem`` when none is given."""
    return {name: race.PROBLEMS[problem].lr(name) for name in registry.OPTIMIZERS}


def problems() -> dict:
    """The answer to ``/api/problems``: what the page needs to build its controls."""
    return {
        "problems": [{"name": name, "summary": course.summary, "dimensions": course.dimensions,
                      "steps": course.steps, "start": course.start, "bounds": course.bounds,
                      "knob_defaults": course.knob_defaults, "optimizers": list(course.lrs),
                      "lrs": default_lrs(name),
                      "options": [{"name": name, "about": option.about, "value": getattr(course, name),
                                   "low": option.low, "high": option.high}
                                  for name, option in course.options.items()]}
                     for name, course in race.PROBLEMS.items()],
        "optimizers": [{"name": name, "summary": entry.summary} for name, entry in registry.OPTIMIZERS.items()],
        "knobs": list(registry.KNOBS),
        "trace_columns": trace.COLUMNS,
        "max_steps": MAX_STEPS,
        "max_work": MAX_WORK,
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
        raise bad_request(f"{name} must be a number, got {quoted(text)}") from None
    if not math.isfinite(value):
        raise bad_request(f"{name} must be a finite number, got {quoted(text)}")
    return value


def race_arguments(query: dict[str, list[str]]) -> dict:
    """``race.plan``'s keyword arguments from ``/api/race``'s query, checked as far as the query
    alone can be (``race.plan`` checks the rest and the optimizers check their ranges)."""
    lr_names = {f"lr_{name}" for name in registry.OPTIMIZERS}
    option_names = {option for course in race.PROBLEMS.values() for option in course.options}
    known = {"problem", "optimizers", "steps", "lr", *registry.KNOBS, *lr_names, *option_names}
    for name in query:
        if name not in known:
            # an lr_ of an unknown optimizer deserves the optimizer's name, not the parameter's
            if name.startswith("lr_"):
                raise bad_request(f"unknown optimizer {quoted(name[3:])} in {quoted(name)}; choose from "
                                  f"{', '.join(registry.OPTIMIZERS)}")
            raise bad_request(f"unknown parameter {quoted(name)}; choose from problem, optimizers, steps, lr, "
                              f"lr_<optimizer>, {', '.join(registry.KNOBS)} or a problem's option "
                              f"({', '.join(sorted(option_names))})")
    problem = _one(query, "problem")
    if problem is None:
        raise bad_request(f"problem is required; choose from {', '.join(race.PROBLEMS)}")
    if problem not in race.PROBLEMS:
        raise bad_request(f"unknown problem {quoted(problem)}; choose from {', '.join(race.PROBLEMS)}")
    optimizers = _one(query, "optimizers")
    optimizers = [name.strip() for name in optimizers.split(",") if name.strip()] if optimizers else None
    arguments = {"problem": problem, "optimizers": optimizers}

    steps = _one(query, "steps")
    if steps is not None:
        # a few digits at most: int() refuses thousands of them with an error of its own
        if not re.fullmatch("0*[0-9]{1,9}", steps) or not 1 <= int(steps) <= MAX_STEPS:
            raise bad_request(f"steps must be a whole number from 1 to {MAX_STEPS}, got {quoted(steps)}")
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
    for knob in registry.KNOBS:
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
        if course.dimensions != 1 or "grads" not in run.extra:
            out.append(None)
            continue
        # the race sets a knob on every optimizer it applies to; the trace refuses one that does not
        knobs = registry.get(run.optimizer).applicable(result.knobs)
        try:
            rows = trace.trace(run.optimizer, run.extra["grads"], theta=run.params[0][0], lr=run.lr, **knobs)
        except ValueError as error:  # e.g. a diverged run's infinite gradients
            out.append({"error": str(error)})
            continue
        parts_at = next((row["step"] for row, param in zip(rows, run.params[1:])
                         if not math.isclose(row["param"], param[0], rel_tol=1e-9, abs_tol=1e-12)), None)
        out.append({"rows": rows, "parts_at": parts_at})
    return out


def race_plan(query: dict[str, list[str]]) -> race.Plan:
    """The race ``/api/race``'s query asks for, checked, and within :data:`MAX_WORK`."""
    arguments = race_arguments(query)
    try:
        plan = race.plan(arguments.pop("problem"), arguments.pop("optimizers"), arguments.pop("lrs"),
                         arguments.pop("steps", None), options=arguments.pop("options"), **arguments)
    except (ValueError, TypeError) as error:  # race.plan's and the optimizers' messages name the value
        raise bad_request(str(error)) from None
    if plan.work > MAX_WORK:
        raise bad_request(
            f"this race is {plan.work:,.0f} steps of work ({plan.course.runs(plan.optimizers)} runs x "
            f"{plan.steps} steps x {plan.course.work_per_step:g} a step on {plan.course.name}); the explorer "
            f"computes at most {MAX_WORK:,} a request: choose fewer steps or optimizers")
    return plan


def race_answer(plan: race.Plan, cancel: threading.Event | None = None, progress: race.Progress | None = None) -> dict:
    """The answer to ``/api/race`` for ``plan``; race.Cancelled once ``cancel`` is set; ``progress``
    counts its steps as it goes."""
    result = plan.run(cancel, progress)
    course = race.PROBLEMS[result.problem]
    answer = {**result.to_json(), "dimensions": course.dimensions, "contours": None, "internals": None}
    if course.dimensions == 2 and course.bounds is not None:
        answer["contours"] = contours(result.problem)
    if course.dimensions == 1:
        answer["internals"] = internals(result)
    return answer


# --- the page as files ---------------------------------------------------------------------------

#: The mark an export holds, so that only a folder adamlab exported is ever replaced by another.
EXPORT_MARK = ".adamlab-explore"


def is_export(path: Path) -> bool:
    """Whether ``path`` is a folder :func:`export` wrote, whole or cut short: its mark, and at
    most index.html and static/ (with fonts/) holding the page's files, each a plain file (a
    folder or a link of that name is someone else's), and nothing else."""
    def plain_files(entries: dict) -> bool:
        return all(entry.is_file(follow_symlinks=False) for entry in entries.values())

    def folder(entries: dict, name: str) -> dict | None:  # a real folder's entries, {} if none, None if not one
        entry = entries.pop(name, None)
        if entry is None:
            return {}
        return {item.name: item for item in os.scandir(entry.path)} if entry.is_dir(follow_symlinks=False) else None

    try:
        entries = {entry.name: entry for entry in os.scandir(path)}
        static = folder(entries, "static")
        fonts = folder(static, "fonts") if static is not None else None
    except OSError:
        return False
    if static is None or fonts is None:
        return False
    known = set(page_files())
    return (EXPORT_MARK in entries and set(entries) <= {EXPORT_MARK, "index.html"} and plain_files(entries)
            and set(static) <= known and plain_files(static)
            and {f"fonts/{name}" for name in fonts} <= known and plain_files(fonts))


EXPORT = files.Kind("a page adamlab explore --export wrote", True, is_export)


def export(folder: str | Path) -> Path:
    """Write the page into ``folder`` as static files (index.html and static/), to open from
    ``file://`` or put on any web host: the views that compute in the page work there; the races,
    which adamlab computes, say that they need ``adamlab explore``. ``folder`` must be new, or a
    folder an earlier export wrote (ValueError otherwise, before anything is written); the page
    is written beside it and renamed into place whole."""
    folder = Path(folder).resolve()
    files.check_output(folder, EXPORT, "--export")
    _remove_dead_exports(folder)
    # a folder of its own beside the page, named with this process's id: two exports at once
    # never write into each other's, and one killed half way is known as debris by the next
    partial = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.{os.getpid()}.", suffix=".partial"))
    try:
        os.chmod(partial, 0o777 & ~files.umask())  # mkdtemp's folder is private; a page is not
        # marked first, so that an export cut short leaves a folder known as adamlab's
        _write_synced(partial / EXPORT_MARK, b"written by adamlab explore --export\n")
        (partial / "static" / "fonts").mkdir(parents=True)
        for name in page_files():
            _write_synced(partial / "static" / name, _page_file(name))
        _write_synced(partial / "index.html", (STATIC / "explore.html").read_bytes())
        for each in (partial / "static" / "fonts", partial / "static", partial):
            files.fsync_folder(each)
        files.replace_folder(partial, folder)
        files.fsync_folder(folder.parent)
    except BaseException:  # Ctrl-C included: nothing is left behind, and an earlier export stays
        shutil.rmtree(partial, ignore_errors=True)
        raise
    return folder


def _remove_dead_exports(folder: Path) -> None:
    """Remove what exports of ``folder`` that were killed half way left beside it: the folders
    they were writing (``.NAME.PID.XXXXXXXX.partial``) whose process is gone."""
    for debris in folder.parent.glob(glob.escape(f".{folder.name}.") + "*.partial"):
        pid = debris.name[len(folder.name) + 2:].split(".")[0]
        if not pid.isdigit() or debris.is_symlink() or not debris.is_dir() or not (debris / EXPORT_MARK).is_file():
            continue  # not an export's, or not marked yet: left alone
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:  # its writer is gone
            shutil.rmtree(debris, ignore_errors=True)
        except OSError:  # a process of someone else's: alive
            continue


def _write_synced(path: Path, data: bytes) -> None:
    """Write ``data`` to the new file ``path`` and flush it to the disk: with the folders' entries
    flushed too before the rename, a crash leaves the earlier export or the whole new one."""
    with open(path, "xb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())


# --- the server --------------------------------------------------------------------------------

def static_file(name: str) -> tuple[str, bytes]:
    """The content type and bytes of the page's file ``name``: one of :func:`page_files` that the
    page loads (the notes stay in the package and the export), or the page itself."""
    # looked up among the page's names, so that no name a request makes up reaches the file system
    if (name not in page_files() or name.endswith(".md")) and name != "explore.html":
        raise HTTPError(404, f"no such file {quoted(name)}")
    return _TYPES[name[name.rfind("."):]], _page_file(name)


def as_json(payload) -> tuple[str, bytes]:
    return "application/json", json.dumps(trace.finite(payload), allow_nan=False).encode()


def client_gone(connection: socket.socket) -> bool:
    """Whether the client has closed ``connection``: it reads as ready, with nothing to read."""
    try:
        ready, _, _ = select.select([connection], [], [], 0)
        return bool(ready) and connection.recv(1, socket.MSG_PEEK) == b""
    except ValueError:  # a descriptor select cannot watch: assume the client still waits
        return False
    except OSError:  # reset by the client, or closed
        return True


class Handler(BaseHTTPRequestHandler):
    server_version = "adamlab-explore"
    timeout = 60  # a client that sends nothing for a minute does not hold its thread for ever

    def log_message(self, format, *args):
        """Quiet: a line per request would bury the URL the command printed."""

    def do_GET(self):
        try:
            self.server.check_host(self.headers.get_all("Host"))
            reply = self.server.answer(self.path, lambda: client_gone(self.connection))
            if reply is None:  # the client has gone: nobody to answer
                self.close_connection = True
                return
            status, content_type, body = reply
        except HTTPError as error:
            status, content_type, body = error.status, *as_json({"error": str(error)})
        except Exception as error:  # a bug: say so to the page and leave the traceback on the console
            traceback.print_exc(file=sys.stderr)
            status, content_type, body = 500, *as_json({"error": f"internal error: {error!r}"})
        self.reply(status, content_type, body)

    def refuse_method(self):
        self.reply(405, *as_json({"error": f"the explorer answers GET only, not {quoted(self.command)}"}),
                   Allow="GET")

    do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = refuse_method

    def reply(self, status: int, content_type: str, body: bytes, **headers) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")  # the page and its numbers are always fresh
            if status == 503:
                self.send_header("Retry-After", "1")
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)
        except (ConnectionError, TimeoutError):  # the page moved on to newer settings and dropped this request
            self.close_connection = True


class ExplorerServer(ThreadingHTTPServer):
    """The explorer's HTTP server, bound to ``host``:``port`` (port 0: any free port).

    Races run on a pool of ``workers`` threads with ``queue`` more waiting at most, and the last
    ``cache`` answers are kept (see the module). A port outside 0 to 65535, a port in use or a
    host it cannot listen on is a ValueError saying so."""

    daemon_threads = True  # a slow race in flight does not hold up Ctrl-C
    request_queue_size = 64  # a burst of connections waits to be accepted rather than being refused

    def __init__(self, host: str = "127.0.0.1", port: int = 8765, *, workers: int = WORKERS,
                 queue: int = QUEUE, cache: int = CACHE):
        if not (isinstance(port, int) and 0 <= port <= 65535):
            raise ValueError(f"port must be a whole number from 0 to 65535 (0: any free port), got {port!r}")
        # before binding: a failed bind calls server_close, which stops the pool
        self.workers, self.queue, self.cache_size = workers, queue, cache
        self.pool = futures.ThreadPoolExecutor(workers, thread_name_prefix="adamlab-race")
        self.slots = threading.BoundedSemaphore(workers + queue)  # one per race running or waiting
        self.cache: OrderedDict[tuple, bytes] = OrderedDict()
        self.counts = Counter()  # races started, computed, cancelled; answers cached; requests refused busy
        self.lock = threading.Lock()  # over cache, counts and in_flight
        self.in_flight: set[threading.Event] = set()  # the cancel events of races not yet done
        self.progress: dict[tuple, race.Progress] = {}  # by race key: the steps done of races not yet done
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        try:
            super().__init__((host, port), Handler)
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ValueError(f"port {port} on {host} is in use; pick another with --port "
                                 f"(0: any free port)") from None
            raise ValueError(f"cannot listen on {host} port {port}: {error.strerror or error}") from None
        except (ValueError, OverflowError) as error:  # a host name no resolver takes (too long, say)
            raise ValueError(f"cannot listen on {quoted(host)} port {port}: {error}") from None

    def check_host(self, hosts: list[str] | None) -> None:
        """Refuse (403) a request whose Host header names another machine, when listening on
        loopback: a web page elsewhere could otherwise point a name of its own at 127.0.0.1 and
        read the answers (DNS rebinding). A Host header given twice or not a host is a 400."""
        if hosts and len(hosts) > 1:
            raise bad_request(f"give the Host header once, got it {len(hosts)} times")
        host = hosts[0] if hosts else None
        try:
            url = urlsplit(f"//{host or ''}")
            name, _ = url.hostname, url.port  # the port too: "127.0.0.1:abc" is no host
        except ValueError:  # "[::1", a port not from 0 to 65535, a name not one under Unicode's rules
            raise bad_request(f"malformed Host header {quoted(host)}") from None
        if not is_loopback(self.server_address[0]):
            return  # told to listen beyond this machine: any name may reach it
        if name is None or not is_loopback(name):
            raise HTTPError(403, f"this explorer answers to {self.url} only, not to Host {quoted(str(host))}")

    def answer(self, path: str, gone=lambda: False) -> tuple[int, str, bytes] | None:
        """The status, content type and body for a GET of ``path``; HTTPError for a 4xx or 503;
        None when ``gone()`` says the client left before its race was done."""
        url = urlsplit(path)
        if url.path == "/":
            return 200, *static_file("explore.html")
        if url.path.startswith("/static/"):
            return 200, *static_file(url.path.removeprefix("/static/"))
        if url.path == "/api/problems":
            return 200, *as_json(problems())
        if url.path == "/api/race":
            body = self.race_body(race_plan(parse_qs(url.query, keep_blank_values=True)), gone)
            return None if body is None else (200, "application/json", body)
        if url.path == "/api/progress":
            return 200, *as_json(self.race_progress(race_plan(parse_qs(url.query, keep_blank_values=True))))
        raise HTTPError(404, f"no such page {quoted(url.path)}; the API is /api/problems, /api/race and "
                             f"/api/progress")

    def race_progress(self, plan: race.Plan) -> dict:
        """How far ``plan``'s race has gone: ``running`` with its steps ``done`` of ``total``, ``done``
        (its answer is kept), or ``none`` (not asked for, or given up)."""
        with self.lock:
            progress = self.progress.get(plan.key)
            if progress is not None:
                return {"state": "running", "done": round(progress.done), "total": round(progress.total),
                        "share": progress.share}
            return {"state": "done" if plan.key in self.cache else "none"}

    def race_body(self, plan: race.Plan, gone) -> bytes | None:
        """``plan``'s answer as JSON: from the cache, or computed on the pool while ``gone()`` is
        false; None once it is true (the race is then dropped or stopped)."""
        with self.lock:
            if plan.key in self.cache:
                self.cache.move_to_end(plan.key)
                self.counts["cached"] += 1
                return self.cache[plan.key]
        if not self.slots.acquire(blocking=False):
            with self.lock:
                self.counts["busy"] += 1
            raise HTTPError(503, f"the explorer is busy: {self.workers} races are running and {self.queue} "
                                 f"waiting, the most it takes; try again in a moment")
        cancel, progress = threading.Event(), plan.progress()
        with self.lock:  # before it is submitted: a race done at once must find itself here to leave
            self.in_flight.add(cancel)
            self.progress[plan.key] = progress  # the same race asked again (the first given up): the newest
        try:
            future = self.pool.submit(self._compute, plan, cancel, gone, progress)
        except RuntimeError:  # the pool is shut down: the server is closing
            self._done(cancel, plan.key, progress)
            raise HTTPError(503, "the explorer is shutting down") from None
        future.add_done_callback(lambda _: self._done(cancel, plan.key, progress))
        while True:
            try:
                return future.result(timeout=POLL_S)
            except futures.TimeoutError:
                if gone():
                    cancel.set()
                    if future.cancel():  # it had not started: it never will
                        with self.lock:
                            self.counts["cancelled"] += 1
                    return None
            except (futures.CancelledError, race.Cancelled):  # the server is closing
                return None

    def _compute(self, plan: race.Plan, cancel: threading.Event, gone, progress: race.Progress) -> bytes:
        """On a worker: the race's answer as JSON, kept in the cache."""
        try:
            if cancel.is_set() or gone():  # the client left while the race waited
                raise race.Cancelled("cancelled before it started")
            with self.lock:
                self.counts["started"] += 1
            body = as_json(race_answer(plan, cancel, progress))[1]
        except race.Cancelled:
            with self.lock:
                self.counts["cancelled"] += 1
            raise
        with self.lock:
            self.counts["computed"] += 1
            self.cache[plan.key] = body
            while len(self.cache) > self.cache_size:
                self.cache.popitem(last=False)
        return body

    def _done(self, cancel: threading.Event, key: tuple, progress: race.Progress) -> None:
        with self.lock:
            self.in_flight.discard(cancel)
            if self.progress.get(key) is progress:
                del self.progress[key]
        self.slots.release()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def server_close(self) -> None:
        """Release the port, and stop the races in flight at their next step (so that the
        process can exit without waiting for them)."""
        super().server_close()
        with self.lock:
            for cancel in self.in_flight:
                cancel.set()
        self.pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        """Stop :func:`serve`'s thread and release the port."""
        self.shutdown()
        self.server_close()


def serve(host: str = "127.0.0.1", port: int = 8765, **limits) -> ExplorerServer:
    """Start the explorer serving in a background thread; ``close()`` it when done. ``limits``:
    ExplorerServer's ``workers``, ``queue`` and ``cache``.

    >>> server = serve(port=0)
    >>> server.url.startswith("http://127.0.0.1:")
    True
    >>> server.close()
    """
    server = ExplorerServer(host, port, **limits)
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
