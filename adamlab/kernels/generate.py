"""Fused CPU kernels printed as C from an update rule's trace (``symbolic.py``).

One traced configuration of an update rule becomes one C function per storage type, with the
calling convention of every kernel (``cpu.c``): the loop skeleton of ``skeleton.h`` around a
loop body that evaluates the maths' nodes in the order they were written. Numbers that depend
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
from typing import NamedTuple

from . import symbolic
from .symbolic import Path, Trace, Value

#: Storage types: the C name of a stored element, the type it is computed in, how it is loaded
#: and stored (``{}`` the value), and the suffix of the kernel's name.
_STORAGE = {
    "f32": ("float", "float", "{}", "{}", "{}", "sqrtf", "fabsf"),
    "f64": ("double", "double", "{}", "{}", "{}", "sqrt", "fabs"),
    "bf16": ("uint16_t", "float", "bf16_load({})", "bf16_store({})",
             "(seed ? bf16_store_stochastic({value}, mix32((uint32_t)(i) * 0x9e3779b9u + seed"
             " + (uint32_t)(tensor) * 0x85ebca6bu)) : bf16_store({value}))", "sqrtf", "fabsf"),
    "f16": ("_Float16", "float", "((float)({}))", "((_Float16)({}))", "((_Float16)({}))", "sqrtf", "fabsf"),
}
_BINARY = {"+", "-", "*", "/"}


class Kernel(NamedTuple):
    """A generated kernel: its C source and how to call it."""

    name: str  # the C function's name, without the storage suffix
    family: str  # the maths module's name: "adam" for adamlab.maths.adam
    source: str
    hyperparameters: tuple[str, ...]  # the scalars it takes, in order (the seed follows them)
    state: tuple[str, ...]  # its state columns after param and grad: tensors, then numbers per tensor
    numbers: tuple[str, ...]  # those of ``state`` that hold one number per tensor


def kernel(maths, trace: Trace) -> Kernel:
    """The C source of ``trace``'s kernel, named after the maths and a digest of the source.

    In the C, hyperparameters are ``h_<name>`` and a tensor's numbers ``n_<name>``, so that no
    name of the maths meets one the C uses for itself."""
    family = maths.__name__.rsplit(".", 1)[-1]
    if {"param", "grad"} & set(trace.state):
        raise symbolic.TraceError(f"{maths.__name__}.State names a field param or grad, as the kernel names its inputs")
    body = "\n".join(_function(trace, suffix) for suffix in _STORAGE)
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    name = f"adamlab_{family}_{digest}"
    source = (f"/* Generated from {maths.__name__}.update by adamlab/kernels/generate.py: do not edit. */\n"
              f'#include "skeleton.h"\n\n' + body.replace("KERNEL_NAME", name))
    return Kernel(name, family, source, trace.hyperparameters, trace.state + trace.scalar_state,
                  trace.scalar_state)


class _Printer:
    """C for the values of one path, each named once, in the order they were traced."""

    def __init__(self, suffix: str, names: dict):
        self.real = _STORAGE[suffix][1]
        self.sqrt, self.abs = _STORAGE[suffix][5], _STORAGE[suffix][6]
        self.names = dict(names)  # value -> its C name
        self.lines: list[str] = []
        self.count = 0

    def name(self, value: Value) -> str:
        if value in self.names:
            return self.names[value]
        args = [self.name(arg) for arg in value.args]
        if value.op == "const":
            return _literal(value.number)
        element = value.kind == "element"
        if element:  # numbers meet an element in its precision, rounded once
            args = [self.element(arg, name) for arg, name in zip(value.args, args)]
        sqrt, absolute = (self.sqrt, self.abs) if element else ("sqrt", "fabs")
        if value.op == "/" and element and value.args[0].kind != "element":
            # A number over a tensor: torch takes the tensor's reciprocal, then multiplies
            # (Tensor.__rtruediv__), two roundings where a division would make one.
            text = f"(({self.real})1 / {args[1]}) * {args[0]}"
        elif value.op in _BINARY:
            text = f"{args[0]} {value.op} {args[1]}"
        elif value.op in symbolic._COMPARISONS:
            text = f"{args[0]} {value.op} {args[1]}"
        else:
            text = {"neg": "-{0}", "sqrt": sqrt + "({0})", "abs": absolute + "({0})", "**": "pow({0}, {1})",
                    "maximum": "MAXIMUM({0}, {1})", "fmax": "FMAX({0}, {1})",
                    "sign": "(" + (self.real if element else "double") + ")SIGN({0})"}[value.op].format(*args)
        self.count += 1
        name = f"{'e' if element else 's'}{self.count}"
        kind = "int" if value.op in symbolic._COMPARISONS else self.real if element else "double"
        self.lines.append(f"const {kind} {name} = {text};")
        self.names[value] = name
        return name

    def element(self, value: Value, name: str) -> str:
        """``value`` (named ``name``) as an element operand: a number rounded to the element type."""
        if value.kind == "element" or self.real == "double":
            return name
        if value.op == "const":
            return f"({self.real}){name}"
        key = ("rounded", value)
        if key not in self.names:
            self.count += 1
            self.names[key] = f"r{self.count}"
            self.lines.append(f"const {self.real} r{self.count} = ({self.real}){name};")
        return self.names[key]


def _literal(number: float) -> str:
    if number != number:
        return "NAN"
    if number in (float("inf"), float("-inf")):
        return "INFINITY" if number > 0 else "(-INFINITY)"
    return f"({number.hex()})"  # exact: C99 reads a hexadecimal float to the bit


def _function(trace: Trace, suffix: str) -> str:
    storage, real, load, store, store_param = _STORAGE[suffix][:5]
    elements = ("param", "grad") + trace.state
    numbers = trace.scalar_state
    columns = len(elements) + len(numbers)
    out = []
    if suffix == "f16":
        out.append("#ifdef __FLT16_MAX__  /* a compiler with _Float16 */")
    out.append(f"void KERNEL_NAME_{suffix}(int64_t count, void **pointers, const int64_t *sizes, "
               f"const double *scalars, int64_t options, int threads) {{")
    body = [f"const int columns = {columns};"]
    body += [f"const double h_{name} = scalars[{index}];" for index, name in enumerate(trace.hyperparameters)]
    body.append(f"const uint32_t seed __attribute__((unused)) = (options & OPTION_STOCHASTIC) ? "
                f"(uint32_t)scalars[{len(trace.hyperparameters)}] | 1u : 0;")
    if numbers:  # one number per tensor each, read before any is written
        body += [f"double *numbers = malloc(sizeof(double) * (count > 0 ? count : 1) * {len(numbers)});",
                 "for (int64_t t = 0; t < count; t++)",
                 f"    for (int k = 0; k < {len(numbers)}; k++) {{",
                 f"        void *number = pointers[t * columns + {len(elements)} + k];",
                 f"        numbers[t * {len(numbers)} + k] = (options & OPTION_STEP_F64) ? *(double *)number : *(float *)number;",
                 "    }"]
    body += ["chunk_t *chunks;",
             "int64_t chunk_count = make_chunks(count, sizes, &chunks);",
             "#pragma omp parallel for schedule(static) num_threads(threads) "
             "if (chunk_count > 1 && parallel_worth_it(count, sizes))",
             "for (int64_t c = 0; c < chunk_count; c++) {",
             "    const int64_t tensor = chunks[c].tensor;"]
    for index, field in enumerate(numbers):
        body.append(f"    const double n_{field} = numbers[tensor * {len(numbers)} + {index}];")
    for index, field in enumerate(elements):
        body.append(f"    {storage} *restrict {field}_column = pointers[tensor * columns + {index}];")
    body.append("    int done = 0;")
    for path in trace.paths:
        body += _indent(_path_loop(trace, path, suffix), 1)
    body += ["}", "free(chunks);"]
    if numbers:  # the new numbers per tensor, from the old, after every chunk has read them
        body += ["for (int64_t tensor = 0; tensor < count; tensor++) {"]
        for index, field in enumerate(numbers):
            body.append(f"    const double n_{field} = numbers[tensor * {len(numbers)} + {index}];")
        body.append("    int done = 0;")
        for path in trace.paths:
            body += _indent(_path_numbers(trace, path, suffix, len(elements)), 1)
        body += ["}", "free(numbers);"]
    out += _indent(body, 1) + ["}"]
    if suffix == "f16":
        out.append("#endif")
    return "\n".join(out) + "\n"


def _inputs(trace: Trace, path: Path) -> dict:
    """The C names of the path's inputs: hyperparameters ``h_<name>``, a tensor's numbers ``n_<name>``."""
    names = {}
    for value in _walk(path):
        if value.op == "input" and value.kind != "element":
            names[value] = ("h_" if value.kind == "call" else "n_") + value.name
    return names


def _walk(path: Path):
    """Every value the path's outputs and conditions depend on."""
    seen, stack = set(), [path.param, *path.state.values(), *(condition for condition, _ in path.conditions)]
    while stack:
        value = stack.pop()
        if value is None or id(value) in seen:
            continue
        seen.add(id(value))
        yield value
        stack.extend(value.args)


def _condition(printer: _Printer, path: Path) -> str:
    tests = [f"{'' if holds else '!'}{printer.name(condition)}" for condition, holds in path.conditions]
    return " && ".join(["!done"] + tests)


def _path_loop(trace: Trace, path: Path, suffix: str) -> list[str]:
    """One path's loop over the chunk: its numbers, then each element's loads, maths and stores."""
    storage, real, load, store, store_param = _STORAGE[suffix][:5]
    printer = _Printer(suffix, _inputs(trace, path))
    condition = _condition(printer, path)
    head = printer.lines
    printer.lines = []
    outputs = [(field, value) for field, value in path.state.items()
               if field in trace.state and value is not None]
    # Numbers first, so that the loop computes only what differs per element.
    loop = _Printer(suffix, printer.names)
    loop.count = printer.count
    for value in [path.param] + [value for _, value in outputs]:
        _numbers_first(loop, value)
    before = loop.lines
    loop.lines = []
    for value in _walk(path):
        if value.op == "input" and value.kind == "element":
            loop.names[value] = f"x_{value.name}"
    loads = [f"const {real} x_{field} = {load.format(f'{field}_column[i]')};"
             for field in ("param", "grad") + trace.state
             if any(v.op == "input" and v.kind == "element" and v.name == field for v in _walk(path))]
    new_param = loop.name(path.param)
    stores = []
    for field, value in outputs:
        if value.op == "input" and value.name == field:
            continue  # unchanged
        stores.append(f"{field}_column[i] = {store.format(loop.name(value))};")
    stores.append("param_column[i] = " + store_param.format(new_param, value=new_param) + ";")
    inner = [f"if ({condition}) {{", "    done = 1;"] + _indent(before, 1) + [
        "    for (int64_t i = chunks[c].start; i < chunks[c].end; i++) {"] + _indent(loads + loop.lines + stores, 2) + [
        "    }", "}"]
    return ["{"] + _indent(head + inner, 1) + ["}"]  # a block: each path names its values afresh


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


def _path_numbers(trace: Trace, path: Path, suffix: str, first_column: int) -> list[str]:
    printer = _Printer(suffix, _inputs(trace, path))
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
