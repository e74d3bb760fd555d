"""The race surfaces: each loss stated once (adamlab.maths.surfaces), its gradient derived from
that statement (symbolic.derivative) and held to torch's autograd, and every optimizer raced down
each in Chromium, as the float64 reference races it."""

import math

import numpy as np
import pytest
import torch

from adamlab import registry
from adamlab.kernels import javascript, symbolic
from adamlab.lab import browser, race
from adamlab.maths import surfaces

NAMES = [course.name for course in race.SURFACES]


def derived_gradient(function):
    """The gradient ``javascript.gradient`` prints, as Python computes the same values."""
    inputs, loss = symbolic.trace_function(function, ("x", "y"))
    parts = [symbolic.derivative(loss, inputs[name]) for name in ("x", "y")]
    return lambda x, y: np.array([part.evaluate({"x": x, "y": y}) for part in parts])


def autograd(function, x: float, y: float) -> np.ndarray:
    w = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
    function(w[0], w[1]).backward()
    return w.grad.numpy()


def points(course, count: int = 15):
    """A grid over the surface's box, its start and its minima."""
    x_low, x_high, y_low, y_high = course.bounds
    grid = [(x, y) for x in np.linspace(x_low, x_high, count) for y in np.linspace(y_low, y_high, count)]
    return [tuple(map(float, point)) for point in grid] + [course.start, *course.minima]


@pytest.mark.parametrize("name", NAMES)
def test_each_surfaces_derived_gradient_is_autograds(name):
    course = race.PROBLEMS[name]
    gradient = derived_gradient(course.function)
    for x, y in points(course):
        expected = autograd(course.function, x, y)
        scale = max(np.abs(expected).max(), 1.0)  # a difference of terms: its rounding is relative to them
        np.testing.assert_allclose(gradient(x, y), expected, rtol=1e-13, atol=1e-13 * scale, err_msg=f"({x}, {y})")


@pytest.mark.parametrize("name", NAMES)
def test_each_surface_is_least_at_its_minima(name):
    course = race.PROBLEMS[name]
    least = min(course.function(*point) for point in course.minima)
    for point in course.minima:
        assert course.function(*point) == pytest.approx(least, abs=1e-9)
        assert np.abs(autograd(course.function, *point)).max() < 1e-4  # the minima are given to 6 places
    x_low, x_high, y_low, y_high = course.bounds
    x, y = np.meshgrid(np.linspace(x_low, x_high, 201), np.linspace(y_low, y_high, 201))
    assert course.function(x, y).min() >= least - 1e-9  # the same statement, on the whole plane at once
    x_start, y_start = course.start
    assert x_low < x_start < x_high and y_low < y_start < y_high


def test_derivatives_of_every_operation_it_takes_are_autograds():
    def bumpy(x, y):
        return (np.sqrt(x * x + y ** 3 + 9) / (1 + np.exp(-x)) - abs(y) * 3 + -(x / y) + (2 - x) * (y - 1) ** 0.5
                + (x - y) ** 2)

    gradient = derived_gradient(bumpy)
    for x, y in [(0.3, 1.7), (-2.0, 4.0), (1.5, 2.5)]:
        w = torch.tensor([x, y], dtype=torch.float64, requires_grad=True)
        xs, ys = w[0], w[1]
        (torch.sqrt(xs * xs + ys ** 3 + 9) / (1 + torch.exp(-xs)) - ys.abs() * 3 - xs / ys
         + (2 - xs) * (ys - 1) ** 0.5 + (xs - ys) ** 2).backward()
        np.testing.assert_allclose(gradient(x, y), w.grad.numpy(), rtol=1e-13)


def test_a_derivative_it_cannot_take_is_refused_with_a_message():
    with pytest.raises(symbolic.TraceError, match="a power by a variable"):
        javascript.gradient(lambda x, y: x ** y, ("x", "y"))
    assert "return [0.0, 1.0];" in javascript.gradient(lambda x, y: y + 2.0, ("x", "y"))  # zero where it is


def reference(course, name: str, lr: float, start, steps: int):
    """The float64 reference race: the optimizer's maths on NumPy arrays, on the derived gradient."""
    entry = registry.get(name)
    maths, values = browser.maths_of(entry), browser.hyperparameters(entry)
    gradient = derived_gradient(course.function)
    param = np.array(start, dtype=np.float64)
    state = browser.initial_state(entry, param, values)
    path = [param]
    for _ in range(steps):
        grad = browser.as_maths_takes(entry, np.asarray(gradient(*param)))  # Adam-mini's maths: one row
        step = maths.update(grad, state, browser.as_maths_takes(entry, param), **{**values, "lr": lr})
        param, state = np.asarray(step.param, dtype=np.float64).reshape(-1), step.state
        path.append(param)
    return np.array(path)


DESCEND = """([name, optimizer, lr, start, steps]) =>
  adamlabDescend(ADAMLAB_SURFACES[name], optimizer, {lr}, start, steps)"""


@pytest.fixture(scope="module")
def page(browser_page):
    browser_page.set_content("<!doctype html><title>surfaces</title>")
    browser_page.add_script_tag(content=browser.script())
    assert browser_page.errors == []
    return browser_page


@pytest.mark.parametrize("name", NAMES)
def test_the_page_has_each_surface_its_gradient_and_its_race_settings(page, name):
    course = race.PROBLEMS[name]
    gradient = derived_gradient(course.function)
    for x, y in points(course, 7):
        loss, got = page.evaluate("([name, x, y]) => [ADAMLAB_SURFACES[name].loss(x, y), "
                                  "ADAMLAB_SURFACES[name].gradient(x, y)]", [name, x, y])
        assert loss == pytest.approx(course.function(x, y), rel=1e-15, abs=1e-300)
        np.testing.assert_allclose(got, gradient(x, y), rtol=1e-15, atol=1e-300)
    shown = page.evaluate("(name) => { const {loss, gradient, ...rest} = ADAMLAB_SURFACES[name]; return rest; }", name)
    assert shown == {"summary": course.summary, "bounds": list(course.bounds), "start": list(course.start),
                     "minima": [list(point) for point in course.minima], "steps": course.steps,
                     "field": list(course.lrs), "lrs": {name: course.lr(name) for name in registry.OPTIMIZERS}}


CASES = [(course.name, optimizer) for course in race.SURFACES for optimizer, entry in registry.OPTIMIZERS.items()
         if entry.in_page]


@pytest.mark.parametrize("name, optimizer", CASES, ids=[f"{name}-{optimizer}" for name, optimizer in CASES])
def test_every_optimizer_races_every_surface_in_the_page_as_the_float64_reference(page, name, optimizer):
    course = race.PROBLEMS[name]
    lr = course.lr(optimizer)
    with np.errstate(all="ignore"):  # a run that diverges (RAdam's unadapted first steps) is compared too
        expected = reference(course, optimizer, lr, course.start, course.steps)
        losses = [course.function(*point) for point in expected]
    got = page.evaluate(DESCEND, [name, optimizer, lr, list(course.start), course.steps])
    path = np.array(got["path"], dtype=np.float64)
    assert path.shape == expected.shape == (course.steps + 1, 2)
    np.testing.assert_allclose(path, expected, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(np.array(got["losses"], dtype=np.float64), losses, rtol=1e-12, atol=1e-300)


def test_the_page_races_as_adamlab_race_does_with_torchs_autograd(page):
    """The server's race (adamlab's torch optimizers on autograd's gradients) and the page's take
    the same steps: on the bowl, where nothing amplifies a last bit, to 1e-12."""
    served = race.run("bowl", ["sgd", "momentum", "rmsprop", "adam", "lion", "adammini"])
    for run in served.runs:
        got = page.evaluate(DESCEND, ["bowl", run.optimizer, run.lr, list(race.PROBLEMS["bowl"].start), served.steps])
        np.testing.assert_allclose(got["path"], run.params, rtol=1e-12, atol=1e-300, err_msg=run.optimizer)
        np.testing.assert_allclose(got["losses"], run.losses, rtol=1e-12, atol=1e-300, err_msg=run.optimizer)


def test_the_surfaces_are_races_of_adamlab_race_too():
    for course in race.SURFACES:
        result = race.run(course.name)
        assert [run.optimizer for run in result.runs] == list(course.lrs)
        best = min(result.runs, key=lambda run: run.extra["distance_to_minimum"])
        x_low, x_high, y_low, y_high = course.bounds
        assert best.extra["distance_to_minimum"] < 0.05 * math.hypot(x_high - x_low, y_high - y_low)
        assert f"({course.start[0]:g}, {course.start[1]:g})" in result.title
    assert race.PROBLEMS["saddle"].lr("lion") == race.PROBLEMS["saddle"].lrs["adam"] / 10
    assert race.PROBLEMS["saddle"].lr("adagrad") == 10 * race.PROBLEMS["saddle"].lrs["rmsprop"]
    assert surfaces.saddle(0.0, 2 ** 0.5) == pytest.approx(-1.0)


# --- the page's view: Races on surfaces -----------------------------------------------------------

@pytest.fixture(scope="module")
def origins(tmp_path_factory):
    """The page served by ``adamlab explore`` and the page exported to files: every test of the
    view runs on both."""
    from adamlab.lab import explore

    folder = tmp_path_factory.mktemp("export") / "page"
    explore.export(folder)
    server = explore.serve(port=0)
    yield {"server": server.url, "export": (folder / "index.html").as_uri()}
    server.close()


@pytest.fixture(params=["server", "export"])
def view(request, origins, browser_page):
    """The page at the surface view, fresh from ``origins`` (``view.open(fragment)``)."""
    page = browser_page

    def open_at(fragment: str = ""):
        page.goto("about:blank")
        page.goto(origins[request.param] + fragment)
        page.wait_for_function("window.surfaceView && window.surfaceView.draws >= 1")
        return page

    page.open = open_at
    page.errors.clear()
    yield page
    assert page.errors == []


def runs_of(page) -> dict:
    return page.evaluate("Object.fromEntries(Object.entries(window.surfaceView.runs).map("
                         "([name, run]) => [name, {lr: run.lr, path: run.path}]))")


def assert_raced(page, name: str, start, steps: int, lrs: dict):
    """Each run on the page is the float64 reference's race, at the learning rate given."""
    runs = runs_of(page)
    assert sorted(runs) == sorted(lrs)
    for optimizer, lr in lrs.items():
        assert runs[optimizer]["lr"] == lr
        expected = reference(race.PROBLEMS[name], optimizer, lr, start, steps)
        np.testing.assert_allclose(runs[optimizer]["path"], expected, rtol=1e-12, atol=1e-300, err_msg=optimizer)


def test_the_view_races_the_surfaces_field_from_its_start(view):
    page = view.open()
    course = race.PROBLEMS["rosenbrock"]
    assert_raced(page, "rosenbrock", course.start, course.steps, course.lrs)
    rows = page.locator("#surface-table tbody tr").all_inner_texts()
    assert [row.split()[0] for row in rows] == list(course.lrs)
    adam = reference(course, "adam", course.lrs["adam"], course.start, course.steps)[-1]
    assert f"{float(f'{adam[0]:.4g}'):g}" in rows[list(course.lrs).index("adam")]
    assert page.input_value("#surface-scrub") == str(course.steps)  # the whole race, until played
    assert "step 1000 of 1000" in page.inner_text("#surface-at")
    assert "adam at (" in page.get_attribute("#surface-canvas", "aria-label")  # said to screen readers


def test_a_click_on_the_surface_starts_the_race_there_and_plays_it(view):
    page = view.open()
    box = page.locator("#surface-canvas").bounding_box()
    page.click("#surface-canvas", position={"x": box["width"] * 0.75, "y": box["height"] * 0.25})
    x_low, x_high, y_low, y_high = race.PROBLEMS["rosenbrock"].bounds
    x, y = float(page.input_value("#surface-x")), float(page.input_value("#surface-y"))
    assert x == pytest.approx(x_low + 0.75 * (x_high - x_low), abs=0.02)
    assert y == pytest.approx(y_high - 0.25 * (y_high - y_low), abs=0.02)
    assert page.evaluate("window.surfaceView.playing")
    page.wait_for_function("window.surfaceView.frame > 20")  # the balls move along their paths
    page.click("#surface-play")  # pause
    frame = page.evaluate("window.surfaceView.frame")
    page.wait_for_timeout(200)
    assert page.evaluate("window.surfaceView.frame") == frame and not page.evaluate("window.surfaceView.playing")
    page.click("#surface-step")
    assert page.evaluate("window.surfaceView.frame") == math.floor(frame) + 1
    page.fill("#surface-scrub", "37")
    assert page.evaluate("window.surfaceView.frame") == 37 and "step 37 of 1000" in page.inner_text("#surface-at")
    page.fill("#surface-scrub", "0")
    page.check("#surface-on-adamw")  # a change of settings keeps the step shown, the start too
    assert page.evaluate("window.surfaceView.frame") == 0 and "step 0 of 1000" in page.inner_text("#surface-at")
    page.uncheck("#surface-on-adamw")
    assert_raced(page, "rosenbrock", (x, y), 1000, race.PROBLEMS["rosenbrock"].lrs)
    href = page.evaluate("location.href")
    assert f"surface_x={page.input_value('#surface-x')}" in href


def test_the_keyboard_moves_the_start_and_plays(view):
    page = view.open()
    page.focus("#surface-canvas")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowUp")
    x_low, x_high, y_low, y_high = race.PROBLEMS["rosenbrock"].bounds
    assert float(page.input_value("#surface-x")) == pytest.approx(-1.5 + (x_high - x_low) / 50)
    assert float(page.input_value("#surface-y")) == pytest.approx(2.0 + (y_high - y_low) / 50)
    assert page.evaluate("window.surfaceView.playing")
    page.keyboard.press(" ")
    assert not page.evaluate("window.surfaceView.playing")


def test_a_link_brings_back_the_surface_its_start_its_optimizers_and_their_learning_rates(view):
    page = view.open("#surface_name=himmelblau&surface_x=-1&surface_y=-1.5&surface_steps=200"
                     "&surface_on=adam,lion,lamb&surface_lr_adam=0.2&surface_lr_lion=0.003")
    assert page.input_value("#surface-name") == "himmelblau"
    course = race.PROBLEMS["himmelblau"]
    assert_raced(page, "himmelblau", (-1.0, -1.5), 200, {"adam": 0.2, "lion": 0.003, "lamb": course.lr("lamb")})
    page.select_option("#surface-name", "saddle")  # another surface: its own start, field and rates
    saddle = race.PROBLEMS["saddle"]
    assert_raced(page, "saddle", saddle.start, saddle.steps, saddle.lrs)
    assert "surface_name=saddle" in page.evaluate("location.href")


def test_a_learning_rate_slider_races_again_at_its_rate(view):
    page = view.open()
    page.check("#surface-on-lion")
    page.locator("#surface-lr-lion").fill("-2")  # a decade on the log scale: lr 0.01
    runs = runs_of(page)
    assert runs["lion"]["lr"] == 0.01 and page.inner_text("#surface-lr-lion-value") == "0.01"
    assert_raced(page, "rosenbrock", (-1.5, 2.0), 1000, {**race.PROBLEMS["rosenbrock"].lrs, "lion": 0.01})
    assert "surface_lr_lion=0.01" in page.evaluate("location.href")
    page.uncheck("#surface-on-lion")  # switched off: its rate leaves the link, and its default comes back
    assert "surface_lr_lion" not in page.evaluate("location.href")
    page.reload()
    page.wait_for_function("window.surfaceView.draws >= 1")
    page.check("#surface-on-lion")
    assert runs_of(page)["lion"]["lr"] == race.PROBLEMS["rosenbrock"].lr("lion")
    page.uncheck("#surface-on-sgd")
    assert "sgd" not in runs_of(page)


@pytest.mark.parametrize("field, text, message", [
    ("x", "5", "x must be a number in [-2, 2], the surface's box"),
    ("y", "far", "y must be a number in [-1, 3], the surface's box"),
    ("steps", "2.5", "steps must be a whole number from 1 to 5000"),
    ("steps", "100000", "steps must be a whole number from 1 to 5000"),
])
def test_bad_input_is_said_beside_it_and_the_picture_kept(view, field, text, message):
    page = view.open()
    before, draws = runs_of(page), page.evaluate("window.surfaceView.draws")
    page.fill(f"#surface-{field}", text)
    assert page.inner_text(f"#surface-{field}-error") == message
    assert page.get_attribute(f"#surface-{field}", "aria-invalid") == "true"
    assert page.evaluate("window.surfaceView.draws") == draws and runs_of(page) == before


def test_a_learning_rate_out_of_range_in_a_link_is_said_and_the_default_used(view):
    page = view.open("#surface_on=adam&surface_lr_adam=1e9")
    assert runs_of(page)["adam"]["lr"] == race.PROBLEMS["rosenbrock"].lrs["adam"]
    assert "adam's lr in the link (1e9) is not a number in [1e-5, 1e1]" in page.inner_text("#surface-lr-error")


def test_a_diverged_run_says_at_which_step(view):
    page = view.open("#surface_on=sgd&surface_lr_sgd=0.01")
    row = page.locator("#surface-table tbody tr").first.inner_text()
    assert "diverged at step" in row
    with np.errstate(all="ignore"):
        expected = reference(race.PROBLEMS["rosenbrock"], "sgd", 0.01, (-1.5, 2.0), 1000)
        losses = np.array([surfaces.rosenbrock(*point) for point in expected])
    # as adamlab race says it: the first step whose loss or parameters are not finite
    first = int(np.argmax(~(np.isfinite(expected).all(axis=1) & np.isfinite(losses))))
    assert 0 < first < 1000 and f"diverged at step {first}" in row
