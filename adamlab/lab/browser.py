"""The registry's optimizers for the explorer's page: JavaScript printed from their maths
(``adamlab.kernels.javascript``), so the page steps them itself, instantly, with the numbers of
the float64 reference."""

import functools
import json
import math

import numpy as np
import torch

from .. import registry
from ..kernels import javascript
from ..maths import moments, surfaces
from ..maths.hyperparameters import keyword_arguments
from . import race, trace


def maths_of(entry: registry.Entry):
    """The maths ``entry``'s class runs on a parameter of the page (two numbers): 8-bit Adam's
    keeps tensors that small at full precision, on Adam's maths."""
    return entry.make.maths


def hyperparameters(entry: registry.Entry, knobs: dict | None = None, **arguments) -> dict:
    """``entry``'s maths arguments (its name's settings, ``arguments``, then ``knobs``) for the
    float64 page: eps1 that defaults to the parameters' machine epsilon is float64's."""
    maths = maths_of(entry)
    accepted = keyword_arguments(maths.update)
    values = {name: value for name, value in entry.maths_arguments(knobs, **arguments).items() if name in accepted}
    if "eps1" in values and values["eps1"] is None:
        values["eps1"] = float(np.finfo(np.float64).eps)
    return values


def as_maths_takes(entry: registry.Entry, array: np.ndarray) -> np.ndarray:
    """The page's flat parameter (or gradient) as ``entry``'s maths takes it: one row for maths
    of matrices (Adam-mini's blocks), as the lessons hand it."""
    return np.reshape(array, (1, -1)) if entry.matrix_maths else array


def initial_state(entry: registry.Entry, param: np.ndarray, values: dict):
    """The maths' state of a fresh ``param`` (float64, the page's flat array), for these hyperparameters."""
    maths = maths_of(entry)
    return maths.init(as_maths_takes(entry, param),
                      **{name: value for name, value in values.items() if name in keyword_arguments(maths.init)})


def rule(entry: registry.Entry) -> javascript.Rule:
    """``entry``'s rule for the page: its learning rate and knobs change as the page runs."""
    values = hyperparameters(entry)
    born = tuple(entry.make.state_fields[key] for key in entry.make.born_at_first_step)
    changing = {"lr", *(knob.maths for knob in entry.knobs.values())}
    # the state of a parameter of two elements, where one number per row (Adam-mini's v) shows as one
    initial = initial_state(entry, np.ones(2), values)
    # a state that starts as the parameter (Schedule-Free's z): a fresh state of another parameter shows it
    other = initial_state(entry, np.full(2, 2.0), values)
    starts_as_param = tuple(field for field, one, two in zip(initial._fields, initial, other)
                            if isinstance(one, np.ndarray) and np.all(one == 1.0) and np.all(two == 2.0))
    return javascript.rule(maths_of(entry), values, initial, born,
                           {name for name in changing if isinstance(values.get(name), (int, float))}, starts_as_param,
                           one_row=entry.matrix_maths)


#: The race problems whose loss is linear in the parameters at every step, so that their gradients
#: do not depend on where the parameters are: the page races them itself.
LINEAR_PROBLEMS = ("amsgrad", "weight-decay")


def linear_problem(name: str) -> dict:
    """A linear race problem (``race.PROBLEMS[name]``) for the page to race itself: its gradient
    at every step (taken once, by autograd, from the race's own loss), the schedule's multiplier
    of lr at every step, the interval the parameters are projected onto (infinite where none),
    and the race's start, learning rates and knobs."""
    course = race.PROBLEMS[name]
    w = torch.zeros(course.dimensions, dtype=torch.float64, requires_grad=True)
    grads = []
    for t in range(course.steps):
        w.grad = None
        course.loss(w, t).backward()
        grads.append(w.grad.tolist())
    ends = torch.tensor([-math.inf, math.inf], dtype=torch.float64)
    course.project(ends)  # the interval, from the race's own projection
    return {"grads": grads, "schedule": [course.schedule(t) for t in range(course.steps)],
            "low": ends[0].item(), "high": ends[1].item(), "start": list(course.start), "lrs": course.lrs,
            "knobs": course.knob_defaults, "title": course.title(course.start)}


def surface(course: race.Surface) -> str:
    """A race surface for the page, as a JavaScript object: its loss and gradient (``printed``),
    its box, start, minima and steps, and every optimizer's learning rate there."""
    return printed(course.function, ("x", "y"), {
        "summary": course.summary, "bounds": course.bounds, "start": course.start, "minima": course.minima,
        "steps": course.steps, "field": list(course.lrs), "lrs": {name: course.lr(name) for name in registry.OPTIMIZERS}})


def printed(function, positional: tuple[str, ...], about: dict) -> str:
    """A JavaScript object of ``about``'s values and ``function``'s loss and gradient, printed from
    the maths: the gradient derived from the loss's own expression."""
    fields = "".join(f"    {key}: {json.dumps(value)},\n" for key, value in about.items())
    return ("{\n" + fields + f"    loss: {javascript._indent_js(javascript.function(function, positional), 4)},\n"
            f"    gradient: {javascript._indent_js(javascript.gradient(function, positional), 4)},\n  }}")


@functools.cache
def script() -> str:
    """The page's script, printed once a process: the rule of every optimizer it steps itself
    (``ADAMLAB_RULES``), the registry's names in order (``ADAMLAB_NAMES``),
    the knobs each lets the page turn, by the maths' name each sets (``ADAMLAB_KNOBS``: RMSprop's
    beta2 is its alpha), the headers of the step's quantities (``ADAMLAB_COLUMNS``, as
    ``adamlab trace`` prints them), the moment generating function of a normal distribution
    and its two moments (``ADAMLAB_MOMENTS``, from ``adamlab.maths.moments``), the linear race
    problems (``ADAMLAB_LINEAR``), the race surfaces (``ADAMLAB_SURFACES``) and the parabola w^2
    (``ADAMLAB_PARABOLA``)."""
    rules = {name: rule(entry) for name, entry in registry.OPTIMIZERS.items() if entry.in_page}
    knobs = {name: {knob: setting.maths for knob, setting in registry.get(name).knobs.items()
                    if setting.maths in rules[name].changing} for name in rules}
    mgf = {name: javascript.function(getattr(moments, name), positional, ("mean", "spread"))
           for name, positional in (("normal_mgf", ("t",)), ("first_moment", ()), ("second_moment", ()))}
    return (javascript.module(rules) + f"const ADAMLAB_KNOBS = {json.dumps(knobs)};\n"
            "/* Every optimizer of the registry, in its order (the page's colours), those raced on the server too. */\n"
            f"const ADAMLAB_NAMES = {json.dumps(list(registry.OPTIMIZERS))};\n"
            f"const ADAMLAB_COLUMNS = {json.dumps(trace.COLUMNS)};\n"
            "/* The moment generating function of N(mean, spread^2), from adamlab.maths.moments. */\n"
            "const ADAMLAB_MOMENTS = {\n"
            + "".join(f"  {name}: {javascript._indent_js(text, 2)},\n" for name, text in mgf.items()) + "};\n"
            "/* The linear race problems, from adamlab.lab.race, for the views that race them in the page. */\n"
            f"const ADAMLAB_LINEAR = {json.dumps({name: linear_problem(name) for name in LINEAR_PROBLEMS})};\n"
            "/* The race surfaces, from adamlab.maths.surfaces and adamlab.lab.race, raced in the page. */\n"
            "const ADAMLAB_SURFACES = {\n"
            + "".join(f"  {json.dumps(course.name)}: {surface(course)},\n" for course in race.SURFACES) + "};\n"
            "/* The lessons' problem of one parameter, w^2 (race.PROBLEMS['quadratic']). */\n"
            f"const ADAMLAB_PARABOLA = {printed(surfaces.parabola, ('w',), {'start': race.PROBLEMS['quadratic'].start})};\n")
