"""An update rule of ``adamlab.maths`` run on symbolic values: its expression graph, for code generation.

``trace(maths, hyperparameters, present)`` calls ``maths.update`` once per way through its
branches, on :class:`Value` objects in place of the gradient, the parameter, the state and the
hyperparameters. Each arithmetic operator and each ``adamlab.maths.ops`` function (through
NumPy's ``__array_ufunc__`` protocol, which ``np.sqrt`` and friends honour) records a node
instead of computing, in the order the maths is written: the printers of ``generate.py`` emit
it in that order, so a kernel rounds as the simple path does.

A value is one of these kinds, by what it depends on:

- ``call``: hyperparameters only, the same for every tensor of a kernel call;
- ``tensor``: also the step count, the tensor's element count (``np.size``) or another
  per-parameter number of the state (NAdam's ``mu_product``), the same for every element of a
  tensor;
- ``element``: the gradient, the parameter or a state tensor, one per element;
- for a factored state (Adafactor's), of the matrices the tensor is a batch of (its last two
  dimensions): ``row`` (one per row, shape ``(..., rows, 1)``), ``column`` (``(..., 1,
  columns)``) and ``matrix`` (``(..., 1, 1)``). A row meeting a column, by an operator or by
  ``@`` (their outer product), is an element.

A sum over a tensor's elements (``np.sum``, as ``ops.norm`` takes it) is a ``tensor`` value
computed from elements: the kernel makes a pass over the tensor for it before the pass that
uses it (LAMB's trust ratio). ``np.mean`` along the last axis (``-1``) or the one before
(``-2``) is a row or a column computed from elements, or a matrix computed from rows or columns.
``np.where`` is a choice, not a branch, and may choose between elements.

``call`` and ``tensor`` values are computed in double, as Python computes them; the others
(:data:`HELD_IN_TENSORS`) in the precision of the tensors, and a number meeting them is rounded
to it first, as torch does. The maths may branch (``if``) on a flag (a bool, passed as it is), on a ``call``
value (the trace takes the way the given hyperparameters take and records the condition as a
guard: a kernel serves only hyperparameters that satisfy its guards) and on a ``tensor`` value
(both ways are traced; the kernel picks one per tensor). It may not branch on an element.

sympy would give the graph too, but it reorders and simplifies what it is given; a kernel that
must round as the maths does needs the graph exactly as written.
"""

from __future__ import annotations

import operator
from numbers import Real
from typing import NamedTuple

import numpy as np

from ..maths.hyperparameters import keyword_arguments

#: The kinds of a value, each depending on more than those before it (a row and a column on as
#: much: together, an element).
KINDS = ("call", "tensor", "matrix", "row", "column", "element")
#: The kinds held in tensors on the simple path: computed in the tensors' precision.
HELD_IN_TENSORS = ("matrix", "row", "column", "element")
#: What ``np.mean`` along an axis makes of each kind it takes.
_MEANS = {("element", -1): "row", ("element", -2): "column", ("row", -2): "matrix", ("column", -1): "matrix"}
#: The operations that read many values of another kind: each needs a pass of its own.
REDUCTIONS = ("sum", "mean-1", "mean-2")


class TraceError(TypeError):
    """An update rule does something a kernel cannot be generated for; the message says what.
    ``guards``: the branches on numbers taken before it failed (it may trace for others)."""

    guards: tuple = ()


class Value:
    """One number the traced update computes: an input, a constant or an operation on values."""

    __array_priority__ = 1000  # NumPy defers to our operators
    __slots__ = ("op", "args", "kind", "name", "number", "tracer")

    def __init__(self, op: str, args: tuple, kind: str, tracer: "_Tracer", name: str | None = None,
                 number: float | None = None):
        self.op, self.args, self.kind, self.tracer, self.name, self.number = op, args, kind, tracer, name, number

    # --- arithmetic ---------------------------------------------------------------------------
    def _apply(self, op: str, *operands) -> "Value":
        return self.tracer.apply(op, (self, *operands))

    def __add__(self, other): return self._apply("+", other)
    def __radd__(self, other): return self.tracer.apply("+", (other, self))
    def __sub__(self, other): return self._apply("-", other)
    def __rsub__(self, other): return self.tracer.apply("-", (other, self))
    def __mul__(self, other): return self._apply("*", other)
    def __rmul__(self, other): return self.tracer.apply("*", (other, self))
    def __truediv__(self, other): return self._apply("/", other)
    def __rtruediv__(self, other): return self.tracer.apply("/", (other, self))
    def __pow__(self, other): return self._apply("**", other)
    def __rpow__(self, other): return self.tracer.apply("**", (other, self))
    def __matmul__(self, other): return self.tracer.outer(self, other)
    def __rmatmul__(self, other): return self.tracer.outer(other, self)
    def __neg__(self): return self._apply("neg")
    def __abs__(self): return self._apply("abs")
    def __eq__(self, other):  # a comparison the trace would take by identity, silently: refused
        raise TraceError("a kernel branches on <, <=, > or >= of numbers, or on one's truth; not on == or !=")
    __ne__ = __eq__
    def __gt__(self, other): return self._apply(">", other)
    def __ge__(self, other): return self._apply(">=", other)
    def __lt__(self, other): return self._apply("<", other)
    def __le__(self, other): return self._apply("<=", other)

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs or ufunc.__name__ not in _UFUNCS:
            raise TraceError(f"a kernel cannot be generated for numpy.{ufunc.__name__}"
                             f"{'.' + method if method != '__call__' else ''}")
        if ufunc.__name__ == "square":  # as x * x: one rounding, as torch's square
            return self.tracer.apply("*", (inputs[0], inputs[0]))
        return self.tracer.apply(_UFUNCS[ufunc.__name__], inputs)

    def __array_function__(self, function, types, args, kwargs):
        if function is np.where and len(args) == 3 and not kwargs:
            return self.tracer.apply("where", args)
        if function is np.sum and len(args) == 1 and not kwargs:
            return self.tracer.apply("sum", args)
        if function is np.mean and len(args) == 1 and kwargs.keys() == {"axis", "keepdims"} and kwargs["keepdims"]:
            return self.tracer.mean(args[0], kwargs["axis"])
        if function is np.size and len(args) == 1 and not kwargs:
            if args[0].kind != "element":
                raise TraceError(f"np.size of a {args[0].kind} value: a kernel knows its tensors' element counts")
            return self.tracer.size
        raise TraceError(f"a kernel cannot be generated for numpy.{function.__name__} "
                         f"(it takes np.sum of a whole tensor, np.mean along axis -1 or -2 with keepdims, "
                         f"np.size and np.where)")

    def __bool__(self) -> bool:
        return self.tracer.decide(self)

    def __hash__(self):  # identity: a value is its node
        return id(self)

    def __repr__(self) -> str:
        if self.op == "input":
            return self.name
        if self.op == "const":
            return f"{self.number:g}"
        if self.op in _INFIX:  # momentum > 0, (1 - beta2) * v
            return " ".join((_operand(self.args[0]), self.op, _operand(self.args[1])))
        return f"{self.op}({', '.join(map(repr, self.args))})"

    def evaluate(self, numbers: dict) -> float:
        """This ``call`` value for the hyperparameters ``numbers`` (by name), computed as Python would."""
        if self.op == "input":
            return numbers[self.name]
        if self.op == "const":
            return self.number
        return _PYTHON[self.op](*(arg.evaluate(numbers) for arg in self.args))


_INFIX = ("+", "-", "*", "/", "**", ">", ">=", "<", "<=")


def _operand(value: Value) -> str:
    return f"({value!r})" if value.op in _INFIX else repr(value)


_UFUNCS = {"sqrt": "sqrt", "exp": "exp", "maximum": "maximum", "minimum": "minimum", "fmax": "fmax", "sign": "sign", "absolute": "abs",
           "negative": "neg", "square": "*"}
_COMPARISONS = (">", ">=", "<", "<=")
# Python's own arithmetic, for guards: the numbers the simple path's Python computes.
_PYTHON = {"+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
           "**": operator.pow, "neg": operator.neg, "abs": abs, "sqrt": lambda x: float(np.sqrt(x)), "exp": lambda x: float(np.exp(x)),
           "maximum": lambda a, b: float(np.maximum(a, b)), "minimum": lambda a, b: float(np.minimum(a, b)),
           "fmax": lambda a, b: float(np.fmax(a, b)),
           "sign": lambda x: float(np.sign(x)), ">": operator.gt, ">=": operator.ge, "<": operator.lt,
           "<=": operator.le, "where": lambda condition, a, b: a if condition else b}


class Guard(NamedTuple):
    """A condition on the hyperparameters the trace took one way: a kernel serves only
    hyperparameters for which ``condition`` is ``holds`` again."""

    condition: Value
    holds: bool


class Path(NamedTuple):
    """One way through the update's branches on per-tensor values: taken where each of
    ``conditions`` is as given; ``outputs`` the new parameter and state."""

    conditions: tuple[tuple[Value, bool], ...]
    param: Value
    state: dict  # state field -> its new value (or None)
    quantities: dict = {}  # the step's named quantities (m_hat, update ...), for the explorer's tables


class Trace(NamedTuple):
    """An update rule traced for one configuration: every way through it, what it reads."""

    hyperparameters: tuple[str, ...]  # the numbers it takes, in the order of the maths' signature
    scalar_state: tuple[str, ...]  # state fields that hold one number per tensor (the step first)
    state: tuple[str, ...]  # state fields that are tensors, as present in the input or the output
    guards: tuple[Guard, ...]
    paths: tuple[Path, ...]


class _Tracer:
    def __init__(self, numbers: dict, decisions: list[bool], at_run_time: frozenset = frozenset(),
                 one_row: bool = False):
        self.numbers = numbers  # the hyperparameters' values, to decide branches on them
        self.one_row = one_row  # the tensor is one row: a mean along it is one number for the tensor
        self.at_run_time = at_run_time  # those whose branches are taken both ways, as the step's
        self.decisions = decisions  # the way to take at each per-tensor branch, in order
        self.taken: list[tuple[Value, bool]] = []
        self.guards: list[Guard] = []
        self.size = self.input("size", "tensor")  # the tensor's element count: one value, however often asked

    def input(self, name: str, kind: str) -> Value:
        return Value("input", (), kind, self, name=name)

    def constant(self, number) -> Value:
        if not is_number(number):
            raise TraceError(f"a kernel takes numbers, not {type(number).__name__} ({number!r})")
        return Value("const", (), "call", self, number=float(number))

    def apply(self, op: str, operands: tuple) -> Value:
        args = tuple(arg if isinstance(arg, Value) else self.constant(arg) for arg in operands)
        kinds = {arg.kind for arg in args}
        kind = "element" if {"row", "column"} <= kinds else max(kinds, key=KINDS.index)
        if op == "**" and kind in HELD_IN_TENSORS:  # torch raises it in the tensor's precision, C's pow in double
            raise TraceError("a power of a tensor: write it as a product (g * g)")
        if op == "sum":
            if kind != "element":
                raise TraceError("a sum of a number: a kernel sums a tensor's elements")
            kind = "tensor"  # one number per tensor, from all its elements
        return Value(op, args, kind, self)

    def mean(self, value, axis) -> Value:
        if self.one_row and axis == -1 and getattr(value, "kind", None) == "element":
            return Value("mean-1", (value,), "tensor", self)
        kind = _MEANS.get((getattr(value, "kind", None), axis))
        if kind is None:
            raise TraceError(f"a kernel takes the mean of an element along axis -1 or -2, or of a row or a column "
                             f"along the other; not of {value!r} along {axis!r}")
        return Value(f"mean{axis}", (value,), kind, self)

    def outer(self, a, b) -> Value:
        """``a @ b``: a kernel takes it of a row and a column (shapes (..., r, 1) and (..., 1, c)),
        whose product is their outer product, each element one multiplication."""
        if getattr(a, "kind", None) != "row" or getattr(b, "kind", None) != "column":
            raise TraceError("a kernel takes @ of a row and a column only (their outer product)")
        return self.apply("*", (a, b))

    def decide(self, value: Value) -> bool:
        if value.kind in HELD_IN_TENSORS:
            raise TraceError(f"the update branches on a tensor's elements ({value!r}): a kernel branches only on "
                             f"numbers (np.where chooses per element)")
        if value.kind == "call" and not self.at_run_time & _names(value):
            holds = bool(value.evaluate(self.numbers))
            self.guards.append(Guard(value, holds))
            return holds
        index = len(self.taken)
        holds = self.decisions[index] if index < len(self.decisions) else False
        self.taken.append((value, holds))
        return holds


def is_number(value) -> bool:
    """A number a kernel takes as one: a real, not a bool (a flag)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def trace(maths, hyperparameters: dict, present: dict[str, str], at_run_time=frozenset(),
          one_row: bool = False) -> Trace:
    """Trace ``maths.update`` for these hyperparameters (flags as they are; numbers, by their
    values, decide only the branches taken on them, but for those named in ``at_run_time``,
    whose branches are traced both ways, as branches on the step are, for the code to pick one
    as it runs) and this state: ``present`` maps each
    state field the update reads to its kind, ``"tensor"`` (one number per tensor: the step),
    ``"element"``, or ``"row"`` or ``"column"`` (a factored state); the other fields are None.
    ``one_row``: the parameter is one row of a matrix (the page's point for Adam-mini's maths),
    so a mean along its rows is one number for the tensor."""
    numbers = {name: float(value) for name, value in hyperparameters.items() if is_number(value)}
    declared = [name for name in keyword_arguments(maths.update) if name in numbers]
    order = tuple(declared + [name for name in numbers if name not in declared])  # then any **keywords
    paths, pending, guards = [], [[]], []
    while pending:  # every way through the per-tensor branches, depth first
        decisions = pending.pop()
        tracer = _Tracer(numbers, decisions, frozenset(at_run_time), one_row)
        arguments = {name: tracer.input(name, "call") if name in numbers else value
                     for name, value in hyperparameters.items()}
        state = maths.State(**{field: tracer.input(field, present[field]) if field in present else None
                               for field in maths.State._fields})
        try:
            step = maths.update(tracer.input("grad", "element"), state, tracer.input("param", "element"),
                                **arguments)
        except TraceError as error:
            error.guards = tuple(guards + tracer.guards)  # the branches taken on the way: it fails for these
            raise
        except (TypeError, AttributeError) as error:  # an operation on a field that is None here
            failure = TraceError(f"{maths.__name__}.update cannot be traced with state {sorted(present)}: {error}")
            failure.guards = tuple(guards + tracer.guards)
            raise failure from None
        for index in range(len(decisions), len(tracer.taken)):
            pending.append([holds for _, holds in tracer.taken[:index]] + [True])
        guards += tracer.guards  # each path's own (a repeated one costs a comparison)
        new_state = {field: _as_value(tracer, getattr(step.state, field)) for field in maths.State._fields}
        quantities = {name: _as_value(tracer, value) for name, value in step.quantities.items()
                      if value is None or isinstance(value, Value) or is_number(value)}
        paths.append(Path(tuple(tracer.taken), _as_value(tracer, step.param), new_state, quantities))
    fields = maths.State._fields
    scalar_state = tuple(field for field in fields if present.get(field) == "tensor"
                         or any(path.state[field] is not None and path.state[field].kind == "tensor"
                                for path in paths))
    state = tuple(field for field in fields if field not in scalar_state
                  and (field in present or any(path.state[field] is not None for path in paths)))
    return Trace(order, scalar_state, state, tuple(guards), tuple(paths))


def trace_function(fn, positional: tuple[str, ...] = (), keywords: tuple[str, ...] = ()) -> tuple[dict, Value]:
    """``fn`` called on ``call`` values named ``positional`` (passed in order) and ``keywords``
    (passed by name): the inputs by name, and what it returns as a value of them (a number it
    returns, a constant). For the maths of numbers alone: a surface, a moment generating function."""
    tracer = _Tracer({}, [])
    inputs = {name: tracer.input(name, "call") for name in positional + keywords}
    result = fn(*(inputs[name] for name in positional), **{name: inputs[name] for name in keywords})
    return inputs, _as_value(tracer, result)


def derivative(value: Value, wrt: Value) -> Value:
    """d value / d wrt, as values of the same trace: each operation's derivative by the chain rule
    (forward, through the graph as written), terms that are zero left out. For a loss of a few
    numbers (a surface of the explorer's races): its gradient from the one statement of the loss.
    Takes + - * /, powers by a constant, neg, sqrt, exp and abs."""
    tracer, memo = value.tracer, {}

    def total(*terms):  # a sum of (sign, term) where a term of None is zero
        kept = [(sign, term) for sign, term in terms if term is not None]
        if not kept:
            return None
        sign, result = kept[0]
        if sign < 0:
            result = tracer.constant(-result.number) if result.op == "const" else -result
        for sign, term in kept[1:]:
            result = result + term if sign > 0 else result - term
        return result

    def times(factor, inner):  # factor(inner), nothing when inner is zero
        return None if inner is None else factor(inner)

    def mul(p, q):  # p * q, where a factor of one is left out (exact either way, and clearer)
        ones = [operand.op == "const" and operand.number == 1.0 for operand in (p, q)]
        return q if ones[0] else p if ones[1] else p * q

    def d(node: Value):  # None: the derivative is zero
        if node is wrt:
            return tracer.constant(1.0)
        if node in memo:
            return memo[node]
        if node.op in ("input", "const"):
            return None
        a, b = (node.args + (None,))[:2]
        da, db = d(a), (d(b) if b is not None else None)
        if node.op in ("+", "-"):
            result = total((1, da), (1 if node.op == "+" else -1, db))
        elif node.op == "*":
            result = total((1, times(lambda x: mul(x, b), da)), (1, times(lambda x: mul(a, x), db)))
        elif node.op == "/":  # (a / b)' = a' / b - (a / b) b' / b
            result = total((1, times(lambda x: x / b, da)), (-1, times(lambda x: mul(node, x) / b, db)))
        elif node.op == "**":
            if db is not None or b.op != "const":
                raise TraceError(f"the derivative of a power by a variable ({node!r}): write it with exp")
            power = b.number
            result = times(lambda x: mul(2 * a, x) if power == 2 else mul(power * a ** (power - 1), x), da)
        elif node.op == "neg":
            result = total((-1, da))
        elif node.op == "exp":
            result = times(lambda x: mul(node, x), da)
        elif node.op == "sqrt":
            result = times(lambda x: x / (2 * node), da)
        elif node.op == "abs":
            result = times(lambda x: mul(np.sign(a), x), da)
        else:
            raise TraceError(f"no derivative is taken of {node.op} ({node!r})")
        memo[node] = result
        return result

    result = d(value)
    return tracer.constant(0.0) if result is None else result


def _as_value(tracer: _Tracer, value):
    if value is None or isinstance(value, Value):
        return value
    return tracer.constant(value)


def _names(value: Value) -> set:
    """The hyperparameters a ``call`` value is computed from."""
    if value.op == "input":
        return {value.name}
    return set().union(*map(_names, value.args)) if value.args else set()


def satisfied(guards: tuple[Guard, ...], numbers: dict) -> bool:
    """Whether hyperparameters (numbers by name) take every guarded branch as the trace did."""
    return all(bool(guard.condition.evaluate(numbers)) == guard.holds for guard in guards)
