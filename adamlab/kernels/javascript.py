"""adamlab's update rules in JavaScript, printed from the maths' trace, for the explorer's page.

Each optimizer of the registry becomes a function the page calls once a step::

    step(h, state, param, grad) -> {param, state, quantities}

``h`` holds the hyperparameters by the maths' names (``h.lr``, ``h.beta1``), ``state`` the
maths' state fields (a number for the step, a ``Float64Array`` for a tensor), ``param`` and
``grad`` are ``Float64Array``s; nothing passed in is changed. ``quantities`` are the step's
named quantities of the maths (Adam's m_hat, v_hat, update ...), a number or an array each. Flags (amsgrad, nesterov) are fixed
per registry name, as a name fixes them; every branch on the step (RAdam's rectification) or on
a number the page may change (weight decay switched on) is taken as the page runs, so one
function serves every slider value.

JavaScript numbers are doubles, so the page computes what the float64 reference (the maths on
NumPy arrays) computes, in the order the maths is written: the same bits for + - * /, sqrt and
comparisons (each correctly rounded in both); powers within an ulp (V8's pow and C's may differ
in the last bit); sums over a tensor added in index order (NumPy's pairwise sum differs in the
last bits beyond eight elements).
"""

from __future__ import annotations

import json
from typing import NamedTuple

import numpy as np

from .symbolic import REDUCTIONS, Path, Trace, TraceError, Value, derivative, is_number, trace, trace_function

_COMPARISONS = {">", ">=", "<", "<="}
_INFIX = {"+", "-", "*", "/"} | _COMPARISONS
_CALLS = {"sqrt": "Math.sqrt({0})", "exp": "Math.exp({0})", "abs": "Math.abs({0})", "neg": "(-({0}))", "**": "Math.pow({0}, {1})",
          "where": "({0} ? {1} : {2})", "maximum": "(({0} > {1} || {0} !== {0}) ? {0} : {1})",
          "minimum": "(({0} < {1} || {0} !== {0}) ? {0} : {1})",
          "fmax": "(({1} !== {1} || {0} > {1}) ? {0} : {1})", "sign": "({0} > 0 ? 1 : {0} < 0 ? -1 : {0} + 0)"}


class Rule(NamedTuple):
    """One optimizer for the page: its step, and the state a parameter starts from."""

    source: str  # a JavaScript function expression: (h, state, param, grad) => ({param, state})
    first: str | None  # the step while state born at the first step (SGD's momentum) is missing
    hyperparameters: dict  # the maths' numbers by name, with the name's defaults
    initial: dict  # state field -> its starting number (per tensor) or the fill of its array
    numbers: tuple[str, ...]  # the fields of ``initial`` that are one number per tensor
    born: tuple[str, ...]  # state fields the first step makes
    changing: tuple[str, ...]  # the hyperparameters the page may change as it runs


def rule(maths, hyperparameters: dict, initial, born: tuple[str, ...] = (), at_run_time=(),
         starts_as_param: tuple[str, ...] = (), one_row: bool = False) -> Rule:
    """The page's rule for ``maths.update`` with these hyperparameters, starting from ``initial``
    (``maths.State`` of a small parameter: numbers stay numbers, arrays give their fill,
    but those named in ``starts_as_param`` start as a copy of the parameter: Schedule-Free's z).
    Every number is read from ``h`` as the page runs, but only those named in ``at_run_time``
    may change there: the branches the others take are fixed by their values here (RMSprop's
    momentum of 0 keeps no buffer). ``born``: state fields the first step makes. ``one_row``: the
    maths takes the parameter as a matrix (Adam-mini's blocks), and the page's is its one row:
    ``initial`` is then the state of a row of two, where a field of one number per row (one
    column) is one number for the page's parameter."""
    numbers = {name: float(value) for name, value in hyperparameters.items() if is_number(value)}
    fills, kinds = {}, {}
    for field in maths.State._fields:
        value = getattr(initial, field)
        if value is not None and field not in born:
            fills[field] = float(np.asarray(value).reshape(-1)[0])
            per_row = one_row and np.shape(value)[-1:] == (1,)
            kinds[field] = "tensor" if np.ndim(value) == 0 or per_row else "element"
    for field in starts_as_param:
        fills[field] = "param"
    step = _function(trace(maths, hyperparameters, {**kinds, **dict.fromkeys(born, "element")}, at_run_time, one_row))
    first = _function(trace(maths, hyperparameters, kinds, at_run_time, one_row)) if born else None
    return Rule(step, first, numbers, fills, tuple(field for field, kind in kinds.items() if kind == "tensor"),
                tuple(born), tuple(name for name in numbers if name in at_run_time))


def function(fn, positional: tuple[str, ...] = (), keywords: tuple[str, ...] = ()) -> str:
    """``fn`` of numbers (its ``positional`` arguments, then its keyword-only ``keywords``) as a
    JavaScript arrow function of them all, in that order: for the maths the page draws beside
    the optimizers (the moment generating function, the race surfaces)."""
    inputs, result = trace_function(fn, positional, keywords)
    return _arrow(inputs, result)


def gradient(fn, positional: tuple[str, ...]) -> str:
    """The gradient of ``fn`` (a number of the numbers ``positional``) as a JavaScript arrow
    function returning an array of its derivatives in that order, each derived from ``fn``'s own
    expression by the chain rule (``symbolic.derivative``): the loss is stated once."""
    inputs, result = trace_function(fn, positional)
    return _arrow(inputs, [derivative(result, inputs[name]) for name in positional])


def _arrow(inputs: dict, result) -> str:
    """An arrow function of ``inputs`` returning ``result``: a value, or an array of values."""
    printer = _Printer()
    printer.names.update({value: name for name, value in inputs.items()})
    returned = (f"[{', '.join(map(printer.name, result))}]" if isinstance(result, list) else printer.name(result))
    body = ["  " + line for line in printer.lines] + [f"  return {returned};"]
    return "\n".join([f"({', '.join(inputs)}) => {{", *body, "}"])


def module(rules: dict[str, Rule]) -> str:
    """A script defining ``ADAMLAB_RULES``: each rule by name, with ``init(n)`` and ``step``."""
    entries = []
    for name, each in rules.items():
        entries.append(f"  {json.dumps(name)}: {{\n"
                       f"    hyperparameters: {json.dumps(each.hyperparameters)},\n"
                       f"    initial: {json.dumps(each.initial)},\n"
                       f"    numbers: {json.dumps(each.numbers)},\n"
                       f"    born: {json.dumps(each.born)},\n"
                       f"    changing: {json.dumps(each.changing)},\n"
                       f"    step: {_indent_js(each.source, 4)},\n"
                       f"    first: {_indent_js(each.first, 4) if each.first else 'null'},\n  }}")
    return ("/* Printed from adamlab.maths by adamlab/kernels/javascript.py: do not edit. */\n"
            "const ADAMLAB_RULES = {\n" + ",\n".join(entries) + "\n};\n" + _RUNTIME)


_RUNTIME = """
/* A fresh state for the parameters `param` (an array), and one step of a rule: its first step
 * where state is born then (SGD's momentum buffer), else its step. */
function adamlabInit(rule, param) {
  const state = {};
  for (const [field, fill] of Object.entries(rule.initial)) {
    state[field] = rule.numbers.includes(field) ? fill
      : fill === "param" ? Float64Array.from(param) : new Float64Array(param.length).fill(fill);
  }
  return state;
}
function adamlabStep(rule, h, state, param, grad) {
  const first = rule.first !== null && rule.born.some((field) => !(field in state));
  return (first ? rule.first : rule.step)(h, state, param, grad);
}
/* A race on a problem whose gradients are given for every step (a linear one, ADAMLAB_LINEAR in
 * the explorer's script): the optimizer by name with the problem's knobs, lr times the schedule
 * at each step, the parameters kept in the problem's interval after each; the parameters at
 * every step, the start first, as adamlab.lab.race computes them. */
function adamlabRace(problem, name, lr) {
  const rule = ADAMLAB_RULES[name];
  const h = {...rule.hyperparameters};
  for (const [knob, value] of Object.entries(problem.knobs)) {
    if (knob in ADAMLAB_KNOBS[name]) h[ADAMLAB_KNOBS[name][knob]] = value;
  }
  let state = adamlabInit(rule, problem.start);
  let w = Float64Array.from(problem.start);
  const path = [Array.from(w)];
  problem.grads.forEach((grad, t) => {
    const next = adamlabStep(rule, {...h, lr: lr * problem.schedule[t]}, state, w, Float64Array.from(grad));
    state = next.state;
    w = next.param.map((x) => Math.min(Math.max(x, problem.low), problem.high));
    path.push(Array.from(w));
  });
  return path;
}
/* A race down a loss whose gradient the page computes (ADAMLAB_SURFACES, ADAMLAB_PARABOLA in
 * the explorer's script): the optimizer by name with `settings` over its defaults (lr, and the
 * maths' names of its knobs), from start, steps steps, each on the gradient where the parameters
 * are; the parameters, the loss at every step (the start first) and each step's quantities, as
 * adamlab.lab.race computes them. */
function adamlabDescend(course, name, settings, start, steps) {
  const rule = ADAMLAB_RULES[name];
  const h = {...rule.hyperparameters, ...settings};
  let state = adamlabInit(rule, start);
  let w = Float64Array.from(start);
  const path = [Array.from(w)], losses = [course.loss(...w)], quantities = [];
  for (let t = 0; t < steps; t++) {
    const next = adamlabStep(rule, h, state, w, Float64Array.from(course.gradient(...w)));
    state = next.state;
    w = next.param;
    path.push(Array.from(w));
    losses.push(course.loss(...w));
    quantities.push(next.quantities);
  }
  return {path, losses, quantities};
}
"""


def _indent_js(text: str, depth: int) -> str:
    return text.replace("\n", "\n" + " " * depth)


def _function(traced: Trace) -> str:
    """``traced`` as a JavaScript function: each way through its branches a block, the first
    whose conditions hold returning the new parameter and state."""
    lines = ["(h, state, param, grad) => {", "  const n = param.length;"]
    for path in traced.paths:
        lines += ["  {"] + ["    " + line for line in _path(traced, path)] + ["  }"]
    lines += ['  throw new Error("no way through the update holds");', "}"]
    return "\n".join(lines)


def _path(traced: Trace, path: Path) -> list[str]:
    printer = _Printer()
    # A number's truth is Python's (and C's): not 0, so NaN holds (JavaScript's NaN is falsy).
    tests = [("" if holds else "!") + (printer.name(condition) if condition.op in _COMPARISONS
                                        else f"({printer.name(condition)} !== 0)")
             for condition, holds in path.conditions]
    head, printer.lines = printer.lines, []
    outputs = {"param": path.param}
    outputs.update({field: value for field, value in path.state.items()
                    if value is not None and field in traced.state})
    per_element = {f"quantity_{name}": value for name, value in path.quantities.items()
                   if value is not None and value.kind == "element"}
    loop = _Printer(outer=printer)
    stores = [f"out_{field}[i] = {loop.name(value)};" for field, value in {**outputs, **per_element}.items()]
    numbers = {field: printer.name(path.state[field]) for field in traced.scalar_state
               if path.state[field] is not None}
    quantities = {name: f"out_quantity_{name}" if value.kind == "element" else printer.name(value)
                  for name, value in path.quantities.items() if value is not None}
    body = printer.lines + [f"const out_{field} = new Float64Array(n);" for field in [*outputs, *per_element]]
    body += ["for (let i = 0; i < n; i++) {"] + ["  " + line for line in loop.lines + stores] + ["}"]
    state = [f"{field}: out_{field}" for field in outputs if field != "param"]
    state += [f"{field}: {name}" for field, name in numbers.items()]
    named = ", ".join(f"{name}: {text}" for name, text in quantities.items())
    body.append(f"return {{param: out_param, state: {{{', '.join(state)}}}, quantities: {{{named}}}}};")
    return head + [f"if ({' && '.join(tests) or 'true'}) {{"] + ["  " + line for line in body] + ["}"]


class _Printer:
    """JavaScript for the values of one path, each named once. A printer of a loop over the
    elements (``outer`` given) prints elements; numbers it asks of its outer printer, which
    prints them before the loop."""

    def __init__(self, outer: _Printer | None = None):
        self.outer = outer
        self.names: dict = {}
        self.lines: list[str] = []
        self.counter = outer.counter if outer else _Counter()

    def name(self, value: Value) -> str:
        if value in self.names:
            return self.names[value]
        element = value.kind == "element"
        if self.outer is not None and not element:
            return self.outer.name(value)
        if self.outer is None and element:
            raise TraceError(f"an element ({value!r}) outside a loop over the elements")
        if value.op == "const":
            return _number(value.number)
        if value.op == "input":
            return self._input(value)
        if value.op == "sum" or (value.op == "mean-1" and value.kind == "tensor"):  # the mean of one row
            loop = _Printer(outer=self)
            term = loop.name(value.args[0])
            total = self.names[value] = f"q{self.counter()}"
            self.lines += [f"let {total} = 0;", "for (let i = 0; i < n; i++) {"]
            self.lines += ["  " + line for line in loop.lines] + [f"  {total} += {term};", "}"]
            if value.op == "mean-1":
                self.lines.append(f"{total} /= n;")
            return total
        if value.op in REDUCTIONS:
            raise TraceError(f"{value.op} along an axis: the page steps flat parameters")
        args = [self.name(arg) for arg in value.args]
        text = f"({args[0]} {value.op} {args[1]})" if value.op in _INFIX else _CALLS[value.op].format(*args)
        name = self.names[value] = f"{'e' if element else 's'}{self.counter()}"
        self.lines.append(f"const {name} = {text};")
        return name

    @staticmethod
    def _input(value: Value) -> str:
        if value.kind == "call":
            return f"h.{value.name}"
        if value.kind == "tensor":
            return "n" if value.name == "size" else f"state.{value.name}"
        return f"{value.name}[i]" if value.name in ("param", "grad") else f"state.{value.name}[i]"


class _Counter:
    def __init__(self):
        self.count = 0

    def __call__(self) -> int:
        self.count += 1
        return self.count


def _number(number: float) -> str:
    if number != number:
        return "NaN"
    if number in (float("inf"), float("-inf")):
        return "Infinity" if number > 0 else "(-Infinity)"
    return repr(float(number))  # the shortest text that reads back as the same double
