"""Fused CPU kernels printed as C from an update rule's trace (``symbolic.py``).

One traced configuration of an update rule becomes one C function, printed once in the
storage-neutral C of ``storage.h`` and compiled per storage type, with the calling convention
of every kernel (``cpu.c``): the loop skeleton of ``skeleton.h`` around a loop body that
evaluates the maths' nodes in the order they were written. Numbers that depend
on no element (bias corrections, step sizes) are computed once per tensor, in double, as Python
computes them on the simple path, and rounded to the tensors' precision where they meet an
element, as torch does; each element operation is one C operation in that precision, and the
library is built with ``-ffp-contract=off``, so no multiply and add are fused into one rounding.
float32 and float64 kernels so give the simple path's results bit for bit; bfloat16 and float16
compute in float32, as the simple path does, and round each stored value once.

Hyperparameters arrive by name: the kernel's ``scalars`` are the maths' numeric keyword
arguments in the order of its signature (:attr:`Kernel.hyperparameters`), and the C names each.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import NamedTuple

from . import symbolic
from .symbolic import Path, Trace, Value

_BINARY = {"+", "-", "*", "/"}


class Kernel(NamedTuple):
    """A generated kernel: its C source and how to call it."""

    name: str  # the C function's name, without the storage suffix
    family: str  # what it steps: the maths module's name ("adam"), or its template's ("adam8bit")
    source: str  # kernel.c: the maths' macros (templated), then the loops once per storage type
    hyperparameters: tuple[str, ...]  # the scalars it takes, in order (the seed follows them)
    state: tuple[str, ...]  # its state columns after param and grad: tensors, then numbers per tensor
    numbers: tuple[str, ...]  # those of ``state`` that hold one number per tensor
    template: str = "update"  # the loops: update.h, printed whole from the maths, or a hand-written file
    body: str | None = None  # update.h's text: the kernel's function in storage-neutral C (not templated)


def kernel(maths, trace: Trace) -> Kernel:
    """The C source of ``trace``'s kernel, named after the maths and a digest of the source.

    The function is printed once, in the storage-neutral C of ``storage.h`` (REAL, LOAD, STORE
    ...), and compiled once per storage type (``each_storage.h``). In the C, hyperparameters are
    ``h_<name>`` and a tensor's numbers ``n_<name>``, so that no name of the maths meets one the
    C uses for itself."""
    family = maths.__name__.rsplit(".", 1)[-1]
    if {"param", "grad"} & set(trace.state):
        raise symbolic.TraceError(f"{maths.__name__}.State names a field param or grad, as the kernel names its inputs")
    body = (f"/* Printed from {maths.__name__}.update by adamlab/kernels/generate.py: do not edit. */\n"
            + _function(trace))
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    name = f"adamlab_{family}_{digest}"
    return Kernel(name, family, _main(name, "update.h"), trace.hyperparameters,
                  trace.state + trace.scalar_state, trace.scalar_state, "update", body)


def _main(name: str, template: str, macros: str = "") -> str:
    """kernel.c: ``template`` compiled once per storage type, its functions named ``name_<suffix>``."""
    return (f'#include "skeleton.h"\n\n{macros}\n#define KERNEL_NAME {name}\n#define TEMPLATE "{template}"\n'
            f'#include "each_storage.h"\n')


class _Printer:
    """C for the values of one path, each named once, in the order they were traced. Printers
    of nested scopes share ``counter``, so that no inner name shadows an outer one."""

    def __init__(self, names: dict, counter=None):
        self.names = dict(names)  # value -> its C name
        self.lines: list[str] = []
        self.counter = counter if counter is not None else itertools.count(1)

    def child(self, names: dict = {}) -> "_Printer":
        """A printer for a scope inside this one: it knows this one's names, and ``names``."""
        return _Printer({**self.names, **names}, self.counter)

    def name(self, value: Value) -> str:
        if value in self.names:
            return self.names[value]
        args = [self.name(arg) for arg in value.args]
        if value.op == "const":
            return _literal(value.number)
        if value.op in symbolic.REDUCTIONS:
            raise symbolic.TraceError(f"{value!r} printed before its pass: the generator schedules reductions")
        element = value.kind in symbolic.HELD_IN_TENSORS
        if element:  # numbers meet an element in its precision, rounded once (a choice's condition stays as it is)
            args = [name if value.op == "where" and index == 0 else self.element(arg, name)
                    for index, (arg, name) in enumerate(zip(value.args, args))]
        sqrt, absolute = ("SQRT", "FABS") if element else ("sqrt", "fabs")
        if value.op == "/" and element and value.args[0].kind not in symbolic.HELD_IN_TENSORS:
            # A number over a tensor: torch takes the tensor's reciprocal, then multiplies
            # (Tensor.__rtruediv__), two roundings where a division would make one.
            text = f"((REAL)1 / {args[1]}) * {args[0]}"
        elif value.op in _BINARY:
            text = f"{args[0]} {value.op} {args[1]}"
        elif value.op in symbolic._COMPARISONS:
            text = f"{args[0]} {value.op} {args[1]}"
        elif value.op == "exp" and element:  # torch's is not C's: no kernel rounds as it does
            raise symbolic.TraceError(f"{value.op} of a tensor: a kernel cannot round it as torch does")
        else:
            text = {"neg": "-{0}", "sqrt": sqrt + "({0})", "abs": absolute + "({0})", "**": "pow({0}, {1})",
                    "exp": "exp({0})",
                    "where": "{0} ? {1} : {2}",
                    "maximum": "MAXIMUM({0}, {1})", "minimum": "MINIMUM({0}, {1})", "fmax": "FMAX({0}, {1})",
                    "sign": "(" + ("REAL" if element else "double") + ")SIGN({0})"}[value.op].format(*args)
        name = f"{'e' if element else 's'}{next(self.counter)}"
        kind = "int" if value.op in symbolic._COMPARISONS else "REAL" if element else "double"
        self.lines.append(f"const {kind} {name} = {text};")
        self.names[value] = name
        return name

    def element(self, value: Value, name: str) -> str:
        """``value`` (named ``name``) as an element operand: a number rounded to the element type."""
        if value.kind in symbolic.HELD_IN_TENSORS:
            return name
        if value.op == "const":
            return f"(REAL){name}"
        key = ("rounded", value)
        if key not in self.names:
            rounded = self.names[key] = f"r{next(self.counter)}"
            self.lines.append(f"const REAL {rounded} = (REAL){name};")
        return self.names[key]


def _literal(number: float) -> str:
    if number != number:
        return "NAN"
    if number in (float("inf"), float("-inf")):
        return "INFINITY" if number > 0 else "(-INFINITY)"
    return f"({number.hex()})"  # exact: C99 reads a hexadecimal float to the bit


def _function(trace: Trace, name: str = "NAME(KERNEL_NAME)") -> str:
    """The C function ``name`` stepping every tensor of a call by ``trace``, each element on its
    own (but for sums over a tensor)."""
    factored = {value.kind for path in trace.paths for value in _walk(path)} & {"row", "column", "matrix"}
    if factored:
        raise symbolic.TraceError(f"an update with {' and '.join(sorted(factored))} values takes a factored "
                                  f"kernel (factored.py)")
    elements = ("param", "grad") + trace.state
    numbers = trace.scalar_state
    columns = len(elements) + len(numbers)
    out = [f"{'static ' if name != 'NAME(KERNEL_NAME)' else ''}void {name}(int64_t count, void **pointers, "
           f"const int64_t *sizes, const double *scalars, int64_t options, int threads) {{"]
    body = [f"const int columns = {columns};"] + _hyperparameters(trace)
    if numbers:  # one number per tensor each, read before any is written
        body += [f"double *numbers = malloc(sizeof(double) * (count > 0 ? count : 1) * {len(numbers)});",
                 "for (int64_t t = 0; t < count; t++)",
                 f"    for (int k = 0; k < {len(numbers)}; k++) {{",
                 f"        void *number = pointers[t * columns + {len(elements)} + k];",
                 f"        numbers[t * {len(numbers)} + k] = (options & OPTION_STEP_F64) ? *(double *)number : *(float *)number;",
                 "    }"]
    body += ["chunk_t *chunks;", "int64_t chunk_count = make_chunks(count, sizes, &chunks);"]
    sums = _sums(trace)
    stored = _stored(trace, sums)
    if sums:  # a pass over every tensor for each level of sums, before the pass that steps
        body += [f"double *sums = calloc((size_t)(count > 0 ? count : 1) * {len(sums)}, sizeof(double));",
                 f"double *partial = malloc(sizeof(double) * (size_t)(chunk_count > 0 ? chunk_count : 1) * {len(sums)});"]
        for level in sorted(set(sums.values())):
            body += _chunks(trace, _sum_pass(trace, sums, level, stored if level == 1 else ()))
            # Each tensor's sums from its chunks' in chunk order: the same bits on any number of threads.
            body += ["for (int64_t c = 0; c < chunk_count; c++) {"]
            body += [f"    sums[chunks[c].tensor * {len(sums)} + {index}] += partial[c * {len(sums)} + {index}];"
                     for index, (value, at) in enumerate(sums.items()) if at == level]
            body += ["}"]
    lines = ["int done = 0;"]
    if stored:  # float32, float64: the new state written by the summing pass, read back here
        lines += (["if (EXACT_STORE) {"] + _indent(_path_loop(trace, trace.paths[0], sums, stored), 1)
                  + ["} else {  /* a half type rounds what it stores: the state is computed again, from the old */"]
                  + _indent(_path_loop(trace, trace.paths[0], sums), 1) + ["}"])
    else:
        for path in trace.paths:
            lines += _path_loop(trace, path, sums)
    body += _chunks(trace, lines) + ["free(chunks);"]
    if sums:
        body += ["free(partial);", "free(sums);"]
    if numbers:  # the new numbers per tensor, from the old, after every chunk has read them
        body += ["for (int64_t tensor = 0; tensor < count; tensor++) {"]
        for index, field in enumerate(numbers):
            body.append(f"    const double n_{field} = numbers[tensor * {len(numbers)} + {index}];")
        body += ["    " + _SIZE, "    int done = 0;"]
        for path in trace.paths:
            body += _indent(_path_numbers(trace, path, len(elements)), 1)
        body += ["}", "free(numbers);"]
    out += _indent(body, 1) + ["}"]
    return "\n".join(out) + "\n"


#: A tensor's element count, for np.size in the maths.
_SIZE = "const double n_size __attribute__((unused)) = (double)sizes[tensor];"


def _hyperparameters(trace: Trace) -> list[str]:
    """The kernel's scalars by name, ``h_<name>``, and the seed of stochastic rounding after them."""
    return ([f"const double h_{name} = scalars[{index}];" for index, name in enumerate(trace.hyperparameters)]
            + [f"const uint32_t seed __attribute__((unused)) = (options & OPTION_STOCHASTIC) ? "
               f"(uint32_t)scalars[{len(trace.hyperparameters)}] | 1u : 0;"])


def _chunks(trace: Trace, lines: list[str]) -> list[str]:
    """``lines`` for every chunk of every tensor, in parallel, with the tensor's numbers and
    columns named."""
    numbers, elements = trace.scalar_state, ("param", "grad") + trace.state
    head = ["const int64_t tensor = chunks[c].tensor;", _SIZE]
    head += [f"const double n_{field} = numbers[tensor * {len(numbers)} + {index}];"
             for index, field in enumerate(numbers)]
    head += [f"STORAGE *restrict {field}_column __attribute__((unused)) = pointers[tensor * columns + {index}];"
             for index, field in enumerate(elements)]
    return (["#pragma omp parallel for schedule(static) num_threads(threads) "
             "if (chunk_count > 1 && parallel_worth_it(count, sizes))",
             "for (int64_t c = 0; c < chunk_count; c++) {"] + _indent(head + lines, 1) + ["}"])


def _sums(trace: Trace) -> dict:
    """The trace's sums over a tensor's elements, each with its level: 1 for a sum of values that
    need no other sum, 2 for one that needs a sum of level 1 ... (a pass over the tensor each)."""
    levels: dict = {}

    def level(value) -> int:  # the level of the sums ``value`` needs
        if value not in levels:
            below = max((level(arg) for arg in value.args), default=0)
            levels[value] = below + 1 if value.op == "sum" else below
        return levels[value]

    sums = {}
    for path in trace.paths:
        for value in _walk(path):
            if value.op == "sum":
                sums[value] = level(value)
    if sums and len(trace.paths) > 1:
        raise symbolic.TraceError("a sum over a tensor in an update that branches on the step: "
                                  "a kernel takes one or the other")
    return dict(sorted(sums.items(), key=lambda item: item[1]))


def _stored(trace: Trace, sums: dict) -> tuple[str, ...]:
    """The state fields whose new values the (one) summing pass computes anyway, so that it may
    store them and the stepping pass read them back, rather than compute them again from the
    old state and the gradient: those the stepping pass then needs no old value of."""
    if not sums or set(sums.values()) != {1}:
        return ()
    path = trace.paths[0]
    summed = set(_walk_from([value.args[0] for value in sums]))
    stored = tuple(field for field in trace.state if path.state[field] in summed
                   and not (path.state[field].op == "input" and path.state[field].name == field))
    news = {path.state[field] for field in stored}
    rest = [path.param] + [value for field, value in path.state.items()
                           if value is not None and field in trace.state and field not in stored]
    read = {value.name for value in _walk_from(rest, stop=news) if value.op == "input"}
    return () if read & set(stored) else stored


def _sum_names(sums: dict, below: int) -> dict:
    """C names for the sums of levels below ``below``, read from the sums of the passes before."""
    return {value: f"q{index}" for index, (value, level) in enumerate(sums.items()) if level < below}


def _sum_reads(sums: dict, below: int) -> list[str]:
    return [f"const double q{index} = sums[tensor * {len(sums)} + {index}];"
            for index, (value, level) in enumerate(sums.items()) if level < below]


def _sum_pass(trace: Trace, sums: dict, level: int, stored: tuple = ()) -> list[str]:
    """One chunk's part of the sums of ``level``: each summed in double, into ``partial``; and the
    new values of the ``stored`` state fields written, where the storage keeps them exactly."""
    printer = _Printer({**_inputs(trace, trace.paths[0]), **_sum_names(sums, level)})
    mine = [(index, value) for index, (value, at) in enumerate(sums.items()) if at == level]
    for _, value in mine:
        _numbers_first(printer, value.args[0])
    before = printer.lines
    printer.lines = []
    fields = _element_inputs([value.args[0] for _, value in mine], printer)
    terms = [f"a{index} += (double){printer.name(value.args[0])};" for index, value in mine]
    terms += [f"if (EXACT_STORE) {field}_column[i] = STORE({printer.name(trace.paths[0].state[field])});"
              for field in stored]
    accumulators = ", ".join(f"a{index}" for index, _ in mine)
    loads = [f"const REAL x_{field} = LOAD({field}_column[i]);" for field in fields]
    return (_sum_reads(sums, level) + before + [f"double {accumulators.replace(', ', ' = 0, ')} = 0;",
            f"#pragma omp simd reduction(+ : {accumulators})",  # the sum may be reordered: the loop vectorizes
            "for (int64_t i = chunks[c].start; i < chunks[c].end; i++) {"]
            + _indent(loads + printer.lines + terms, 1) + ["}"]
            + [f"partial[c * {len(sums)} + {index}] = a{index};" for index, _ in mine])


def _element_inputs(values: list, printer: "_Printer", stop: set = frozenset()) -> list[str]:
    """The element inputs (param, grad, state fields) ``values`` read (not below ``stop``),
    named ``x_<field>`` in ``printer``, in a fixed order (the walk's)."""
    fields = []
    for value in _walk_from(values, stop):
        if value.op == "input" and value.kind == "element":
            printer.names[value] = f"x_{value.name}"
            fields.append(value.name)
    return sorted(set(fields), key=fields.index)


def _inputs(trace: Trace, path: Path) -> dict:
    """The C names of the path's inputs: hyperparameters ``h_<name>``, a tensor's numbers ``n_<name>``."""
    names = {}
    for value in _walk(path):
        if value.op == "input" and value.kind != "element":
            names[value] = ("h_" if value.kind == "call" else "n_") + value.name
    return names


def _walk(path: Path):
    """Every value the path's outputs and conditions depend on."""
    yield from _walk_from([path.param, *path.state.values(), *(condition for condition, _ in path.conditions)])


def _walk_from(values: list, stop: set = frozenset()):
    """Every value ``values`` depend on, themselves included, each once; not below ``stop``."""
    seen, stack = set(), list(values)
    while stack:
        value = stack.pop()
        if value is None or id(value) in seen:
            continue
        seen.add(id(value))
        yield value
        if value not in stop:
            stack.extend(value.args)


def _condition(printer: _Printer, path: Path) -> str:
    tests = [f"{'' if holds else '!'}{printer.name(condition)}" for condition, holds in path.conditions]
    return " && ".join(["!done"] + tests)


def _path_loop(trace: Trace, path: Path, sums: dict, stored: tuple = ()) -> list[str]:
    """One path's loop over the chunk: its numbers, then each element's loads, maths and stores.
    ``stored``: state fields already written with their new values (by the summing pass), read."""
    printer = _Printer({**_inputs(trace, path), **_sum_names(sums, float("inf"))})
    condition = _condition(printer, path)
    head = printer.lines
    printer.lines = []
    outputs = [(field, value) for field, value in path.state.items()
               if field in trace.state and value is not None]
    # Numbers first, so that the loop computes only what differs per element.
    loop = printer.child({path.state[field]: f"y_{field}" for field in stored})
    for value in [path.param] + [value for _, value in outputs]:
        _numbers_first(loop, value)
    before = loop.lines
    loop.lines = []
    fields = _element_inputs([path.param] + [value for _, value in outputs], loop,
                             stop={path.state[field] for field in stored})
    loads = [f"const REAL x_{field} = LOAD({field}_column[i]);" for field in fields]
    loads += [f"const REAL y_{field} = LOAD({field}_column[i]);" for field in stored]
    new_param = loop.name(path.param)
    stores = []
    for field, value in outputs:
        if value.op == "input" and value.name == field or field in stored:
            continue  # unchanged, or written already
        stores.append(f"{field}_column[i] = STORE({loop.name(value)});")
    stores.append(f"param_column[i] = STORE_PARAM({new_param}, tensor, i);")
    inner = [f"if ({condition}) {{", "    done = 1;"] + _indent(before, 1) + [
        "    for (int64_t i = chunks[c].start; i < chunks[c].end; i++) {"] + _indent(loads + loop.lines + stores, 2) + [
        "    }", "}"]
    return ["{"] + _indent(_sum_reads(sums, float("inf")) + head + inner, 1) + ["}"]  # a block: each path names its values afresh


def _numbers_first(printer: _Printer, value: Value) -> None:
    """Name every value below ``value`` that is not per element (and their roundings), so the
    loop's printer finds them already computed."""
    if value is None or value.op in ("input", "const") or value in printer.names:
        return
    for arg in value.args:
        _numbers_first(printer, arg)
    if value.kind != "element":
        printer.name(value)
    else:
        for arg in value.args:
            if arg.kind != "element" and arg.op != "const":
                printer.element(arg, printer.name(arg))


def _path_numbers(trace: Trace, path: Path, first_column: int) -> list[str]:
    printer = _Printer(_inputs(trace, path))
    condition = _condition(printer, path)
    head = printer.lines
    printer.lines = []
    writes = []
    for index, field in enumerate(trace.scalar_state):
        value = path.state[field]
        if value is None:
            raise symbolic.TraceError(f"the update returns no {field} on one of its paths")
        name = printer.name(value)
        writes.append(f"void *new_{field} = pointers[tensor * columns + {first_column + index}];")
        writes.append(f"if (options & OPTION_STEP_F64) *(double *)new_{field} = {name}; "
                      f"else *(float *)new_{field} = (float){name};")
    inner = [f"if ({condition}) {{", "    done = 1;"] + _indent(printer.lines + writes, 1) + ["}"]
    return ["{"] + _indent(head + inner, 1) + ["}"]


def _indent(lines: list[str], depth: int) -> list[str]:
    return ["    " * depth + line if line else line for line in lines]


# --- the maths inside a hand-written kernel ------------------------------------------------------
#
# Where a kernel is more than elementwise maths (8-bit Adam's block codes), its loops are written
# by hand in a template (``adam8bit.h``) and the maths is printed into it as macros, in the
# template's REAL (the type elements are computed in), so that one printing serves every storage
# type. The template names the elements it hands the maths ``x_<field>`` and takes the new ones
# from ``MATHS_NEW_<field>``.

def templated(maths, trace: Trace, template: str) -> Kernel:
    """The kernel of ``template`` (``<template>.h``, hand-written loops in ``adamlab/kernels``) around ``trace``'s
    maths, printed as macros: ``MATHS_HYPERPARAMETERS`` (in the function), ``MATHS_NUMBERS``
    (per tensor, after ``n_<field>`` of the state's numbers), ``MATHS_ELEMENT`` (per element,
    after ``x_<field>`` of param, grad and each state tensor), ``MATHS_NEW_<field>`` (param
    and the state tensors, after MATHS_ELEMENT) and ``MATHS_NEW_NUMBERS`` (per tensor: the state's
    new numbers, ``y_<field>``, from the old)."""
    if len(trace.paths) != 1 or _sums(trace):
        raise symbolic.TraceError(f"{template}.h takes an update without branches on the step or sums over a tensor")
    path = trace.paths[0]
    printer = _Printer(_inputs(trace, path))
    outputs = {"param": path.param, **{field: value for field, value in path.state.items()
                                       if field in trace.state and value is not None}}
    for value in outputs.values():
        _numbers_first(printer, value)
    numbers, printer.lines = printer.lines, []
    _element_inputs(list(outputs.values()), printer)
    new = {field: printer.name(value) for field, value in outputs.items()}
    element = printer.lines
    later = _Printer(_inputs(trace, path))
    new_numbers = [f"const double y_{field} = {later.name(path.state[field])};" for field in trace.scalar_state]
    macros = [_macro("MATHS_HYPERPARAMETERS", _hyperparameters(trace)), _macro("MATHS_NUMBERS", numbers),
              _macro("MATHS_ELEMENT", element), *(f"#define MATHS_NEW_{field} {name}" for field, name in new.items()),
              _macro("MATHS_NEW_NUMBERS", later.lines + new_numbers)]
    body = "\n".join(macros) + "\n"
    family = template  # the kernel's family is its template's: "adam8bit"
    digest = hashlib.sha256((template + body).encode()).hexdigest()[:16]
    name = f"adamlab_{template}_{digest}"
    macros = f"/* {maths.__name__}.update for {template}.h, printed by adamlab/kernels/generate.py. */\n{body}"
    return Kernel(name, family, _main(name, f"{template}.h", macros), trace.hyperparameters,
                  trace.state + trace.scalar_state, trace.scalar_state, template)


def _macro(name: str, lines: list[str]) -> str:
    return f"#define {name}" + "".join(f" \\\n    {line}" for line in lines)
