"""The explorer's optimizers in the browser: JavaScript printed from adamlab.maths
(adamlab.kernels.javascript), run in Debian's chromium and held to the float64 reference, the
same maths on NumPy arrays."""


import numpy as np
import pytest

from adamlab import registry
from adamlab.kernels import javascript, symbolic
from adamlab.lab import browser, race


#: Every optimizer twice: at its name's defaults, and with each knob it has turned.
KNOBS = {"beta1": 0.8, "beta2": 0.99, "eps": 1e-6, "weight_decay": 0.05}
CASES = [(name, knobs) for name, entry in registry.OPTIMIZERS.items() if entry.in_page for knobs in ({}, KNOBS)]
STEPS = 40

RUN = """([name, h, param, grads, lrs]) => {
  const rule = ADAMLAB_RULES[name];
  let state = adamlabInit(rule, param), theta = Float64Array.from(param);
  const path = [], quantities = [];
  for (let t = 0; t < grads.length; t++) {
    const next = adamlabStep(rule, {...h, lr: lrs[t]}, state, theta, Float64Array.from(grads[t]));
    theta = next.param;
    state = next.state;
    path.push(Array.from(theta));
    quantities.push(Object.fromEntries(Object.entries(next.quantities).map(
      ([name, value]) => [name, typeof value === "number" ? [value] : Array.from(value)])));
  }
  return [path, quantities];
}"""


@pytest.fixture(scope="module")
def page(browser_page):
    """The chromium page with the printed rules loaded, and nothing else."""
    browser_page.set_content("<!doctype html><title>rules</title>")
    browser_page.add_script_tag(content=browser.script())
    assert browser_page.errors == []
    return browser_page


def reference(entry, knobs, param, grads, lrs):
    """The float64 reference: the optimizer's maths on NumPy arrays, step by step; its path and
    its quantities at every step."""
    maths = browser.maths_of(entry)
    values = browser.hyperparameters(entry, knobs)
    state = browser.initial_state(entry, param, values)
    param = browser.as_maths_takes(entry, param)  # Adam-mini's: one row
    path, quantities = [], []
    for grad, lr in zip(grads, lrs):
        step = maths.update(browser.as_maths_takes(entry, grad), state, param, **{**values, "lr": lr})
        param, state = step.param, step.state
        path.append(np.asarray(param, dtype=np.float64).reshape(-1))
        quantities.append({name: np.asarray(value, dtype=np.float64).reshape(-1)
                           for name, value in step.quantities.items() if value is not None})
    return np.array(path), quantities


@pytest.mark.parametrize("name, knobs", CASES, ids=[f"{name}{'-knobs' if knobs else ''}" for name, knobs in CASES])
def test_each_optimizer_steps_in_the_browser_as_the_float64_reference(page, name, knobs):
    entry = registry.get(name)
    changing = browser.rule(entry).changing  # Adafactor's beta1 adds state: a rule of its own, not a slider
    knobs = {knob: value for knob, value in entry.applicable(knobs).items() if entry.knobs[knob].maths in changing}
    generator = np.random.default_rng(7)
    param = generator.standard_normal(5)
    grads = generator.standard_normal((STEPS, 5)) * np.linspace(0.1, 3, STEPS)[:, None]
    grads[3, 1] = 0.0  # a zero gradient: sign(0), an untouched second moment
    lrs = 0.05 * 0.97 ** np.arange(STEPS)  # a schedule: the learning rate changes every step
    expected, expected_quantities = reference(entry, knobs, param, grads, lrs)
    values = browser.hyperparameters(entry, knobs)
    h = {key: value for key, value in values.items() if symbolic.is_number(value)}
    got, quantities = page.evaluate(RUN, [name, h, param.tolist(), grads.tolist(), lrs.tolist()])
    got = np.array(got)
    assert got.shape == expected.shape and np.isfinite(expected).all()
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-300)
    for step, (ours, theirs) in enumerate(zip(quantities, expected_quantities)):  # m_hat, update ...
        assert set(ours) == set(theirs), step
        for key in theirs:
            np.testing.assert_allclose(ours[key], theirs[key], rtol=1e-12, atol=1e-300, err_msg=f"{key} at {step}")


def test_a_number_that_is_nan_is_true_in_a_branch_as_in_python(page):
    """Python's `if weight_decay:` holds for NaN; JavaScript's NaN is falsy: the page tests `!== 0`."""
    got = page.evaluate("""() => {
      const rule = ADAMLAB_RULES["sgd"];
      return Array.from(adamlabStep(rule, {...rule.hyperparameters, lr: 0.1, weight_decay: NaN},
                                    adamlabInit(rule, [1]), new Float64Array([1]), new Float64Array([1])).param);
    }""")
    assert len(got) == 1 and np.isnan(got[0])


def test_the_printed_script_names_every_optimizer_and_is_not_written_by_hand():
    script = browser.script()
    assert script.startswith("/* Printed from adamlab.maths")
    for name, entry in registry.OPTIMIZERS.items():
        assert (f'"{name}": {{' in script) == entry.in_page
    assert 'const ADAMLAB_NAMES = ["sgd", "momentum", ' in script and '"muon", "adammini"]' in script


@pytest.mark.parametrize("name", [name for name, entry in registry.OPTIMIZERS.items() if not entry.in_page])
def test_what_the_page_cannot_step_is_said_and_raced_on_the_server(name):
    """Muon's matrix products do not print for the page's parameters
    (when they do, this fails: let the page step them); the server races them on every surface."""
    with pytest.raises(javascript.TraceError):
        browser.rule(registry.get(name))
    runs = race.run("rosenbrock", optimizers=["adam", name]).runs
    assert runs[1].losses[-1] < runs[1].losses[0] / 10 and runs[1].losses[-1] != runs[0].losses[-1]
    # Adam's moments are the maths': a changed maths changes the script
    rule = browser.rule(registry.get("adam"))
    assert "Math.sqrt" in rule.source and rule.first is None
    assert isinstance(javascript.module({"adam": rule}), str)
