"""Fused CPU kernels for an update whose state is factored over matrices (Adafactor's), printed
from the maths' trace as ``generate.py`` prints the elementwise ones.

A tensor of two or more dimensions is a batch of matrices over its last two. Its state holds a
number per row and per column of each (``symbolic``'s ``row`` and ``column`` values), and its
update reads means along rows and columns and sums over the whole tensor. The kernel steps it
in passes over its rows, each value of the maths printed at the first point of them that has
what it needs (:func:`_ready`)::

    pass p:  strips of columns    (where the pass has column means) the column sums, by strips
                                  of 64 columns in parallel, then the column means and what
                                  follows from them
             rows, in parallel    at a row's start, its row values; per element, the maths of
                                  the elements, adding up the sums and row sums of the pass; at
                                  the row's end, the row means and what follows from them
             then, once           the tensor's sums, added in row order (the same bits on any
                                  number of threads); each matrix's means of rows or columns

The last pass writes the new parameters, in its row loop, after its strips have read them. A row, column or matrix value that a later point reads
is kept in a scratch array, a slot each; the new row and column state is stored from there at
the end, so that every pass reads the old. Values held in tensors on the simple path are
computed in the tensors' precision, means and sums in double and rounded once, as
``generate.py`` does.

A tensor of one dimension keeps its state per element: ``generate.py`` prints its function
whole, and the kernel calls it once for all the vectors of a call.

Columns of a row: param, grad, the row state (a vector's state), the column state (the vector's
again), the shape (int64: the matrices' width and height; width 0 for a vector), then the
numbers per tensor (the step).
"""

from __future__ import annotations

import hashlib

from . import generate
from .generate import Kernel, _indent, _Printer, _walk
from .symbolic import REDUCTIONS, Trace, TraceError, Value

# The points of a pass p, in order: 4 p + one of these.
_START, _ROW_END, _STRIP_END, _BETWEEN = range(4)
#: Where a value of each kind may be computed (the element loop and row start are _START).
_POINTS = {"call": (_START,), "tensor": (_START,), "element": (_START,), "row": (_START, _ROW_END),
           "column": (_START, _STRIP_END), "matrix": (_BETWEEN,)}
STRIP = 64  # columns a thread sums at once: each row's part of a strip is contiguous


def kernel(maths, matrices: Trace, vectors: Trace) -> Kernel:
    """The kernel of a factored update: ``matrices`` traced with a row and a column state,
    ``vectors`` with a state per element."""
    if matrices.hyperparameters != vectors.hyperparameters or matrices.scalar_state != vectors.scalar_state:
        raise TraceError(f"{maths.__name__}.update takes other numbers for matrices than for vectors")
    if len(matrices.paths) != 1:
        raise TraceError("a factored update that branches on the step: a kernel takes one way")
    kinds = [_kind(matrices.paths[0].state[field]) for field in matrices.state]
    if kinds != ["row", "column"] or len(vectors.state) != 1:
        raise TraceError(f"a factored kernel keeps a row and a column state for a matrix and one state for a vector, "
                         f"not {list(matrices.state)} and {list(vectors.state)}")
    family = maths.__name__.rsplit(".", 1)[-1]
    numbers = matrices.scalar_state
    body = "\n".join([
        f"/* Printed from {maths.__name__}.update by adamlab/kernels/factored.py: do not edit. */",
        generate._function(vectors, "NAME(vector_step)"), *_matrix_function(matrices),
        "void NAME(KERNEL_NAME)(int64_t count, void **pointers, const int64_t *sizes, const double *scalars, "
        "int64_t options, int threads) {",
        "    /* Matrices one at a time; the vectors (param, grad, their state, the numbers) in one call after. */",
        f"    void **vectors = malloc(sizeof(void *) * (size_t)(count > 0 ? count : 1) * {3 + len(numbers)});",
        "    int64_t *vector_sizes = malloc(sizeof(int64_t) * (size_t)(count > 0 ? count : 1)), found = 0;",
        "    for (int64_t t = 0; t < count; t++) {",
        f"        void **row = pointers + t * {5 + len(numbers)};",
        "        const int64_t *shape = row[4];",
        "        if (shape[0] == 0) {",
        f"            void **vector = vectors + found * {3 + len(numbers)};",
        "            vector[0] = row[0], vector[1] = row[1], vector[2] = row[2];",
        *(f"            vector[{3 + k}] = row[{5 + k}];" for k in range(len(numbers))),
        "            vector_sizes[found++] = sizes[t];",
        "        } else {  /* its own tensor number for stochastic rounding, after the vectors' */",
        "            NAME(matrix_step)(row, sizes[t], shape[0], shape[1], scalars, options, threads, count + t);",
        "        }", "    }",
        "    if (found) NAME(vector_step)(found, vectors, vector_sizes, scalars, options, threads);",
        "    free(vectors);", "    free(vector_sizes);", "}", ""])
    digest = hashlib.sha256(body.encode()).hexdigest()[:16]
    name = f"adamlab_{family}_{digest}"
    return Kernel(name, family, generate._main(name, "factored.h"), matrices.hyperparameters,
                  matrices.state + numbers, numbers, "factored", body)


def _kind(value: Value | None) -> str | None:
    return None if value is None else value.kind


class _Scope(_Printer):
    """A printer that reads a value kept in memory on its first use: ``loads`` maps a value to
    the C expression that reads it."""

    def __init__(self, names: dict, counter, loads: dict):
        super().__init__(names, counter)
        self.loads = loads

    def name(self, value: Value) -> str:
        if value not in self.names and value in self.loads:
            name = self.names[value] = f"w{next(self.counter)}"
            self.lines.append(f"const REAL {name} = {self.loads[value]};")
        return super().name(value)

    def child(self, names: dict = {}, loads: dict = {}) -> "_Scope":  # noqa: B006 (read only)
        return _Scope({**self.names, **names}, self.counter, {**self.loads, **loads})

    def hoist(self, values, kinds: tuple) -> None:
        """Print here every value of ``kinds`` that ``values`` need (not below one printed), so
        that a scope inside this one finds them computed."""
        stack = list(values)
        while stack:
            value = stack.pop()
            if value is None or value in self.names or value.op in ("input", "const"):
                continue
            if value.kind in kinds:
                self.name(value)
            elif value.op not in REDUCTIONS:
                stack.extend(value.args)


def _next(at: int, points: tuple) -> int:
    """The first point at or after ``at`` that is one of ``points`` of a pass."""
    while at % 4 not in points:
        at += 1
    return at


def _ready(path) -> dict:
    """Each value of ``path`` with the point it is computed at (4 p + a point of pass p)."""
    ready: dict = {}
    for value in _walk(path):
        _point(value, ready)
    return ready


def _point(value: Value, ready: dict) -> int:
    if value in ready:
        return ready[value]
    if value.op in ("input", "const"):
        at = 0
    elif value.op in REDUCTIONS and value.args[0].kind == "element":
        summed = _point(value.args[0], ready) // 4  # the pass whose elements it adds up
        at = 4 * (summed + 1) if value.op == "sum" else 4 * summed + (_ROW_END if value.op == "mean-1" else _STRIP_END)
    elif value.op in REDUCTIONS:  # a matrix's mean of kept rows or columns: between passes
        at = _next(_point(value.args[0], ready) + 1, (_BETWEEN,))
    else:
        at = _next(max(_point(arg, ready) for arg in value.args), _POINTS[value.kind])
    ready[value] = at
    return at


def _matrix_function(trace: Trace) -> list[str]:
    """``matrix_step``: one tensor of matrices stepped by ``trace``, in passes over its rows."""
    path = trace.paths[0]
    row_field, column_field = trace.state
    ready = _ready(path)
    consumers: dict = {}
    for value in ready:
        for arg in value.args:
            consumers.setdefault(arg, []).append(value)
    outputs = {field: path.state[field] for field in trace.state if path.state[field] is not None}
    new_state = set(outputs.values())
    kept = {kind: {} for kind in ("row", "column", "matrix")}  # value -> its scratch slot
    for value in sorted(ready, key=ready.get):
        if (value.kind in kept and value.op not in ("input", "const")
                and (value in new_state  # read at another point, or in another loop (a mean of it)
                     or any(c.op in REDUCTIONS or ready[c] != ready[value] for c in consumers.get(value, ())))):
            if value.kind == "column" and ready[value] % 4 != _STRIP_END:
                raise TraceError(f"a column value kept without a column mean to compute it after: {value!r}")
            kept[value.kind][value] = len(kept[value.kind])
    last = max(ready[value] // 4 for value in [path.param, *outputs.values()])
    slots = {kind: max(len(values), 1) for kind, values in kept.items()}

    def kept_before(kind: str, at: int, index: str) -> dict:  # loads of kept values computed before ``at``
        return {value: f"{kind}_values[{index} * {slots[kind]} + {slot}]"
                for value, slot in kept[kind].items() if ready[value] < at}

    def reads(at: int) -> dict:  # the loads of an element's scope (i, j) and its row's (r, m)
        loads = {**kept_before("row", at, "r"), **kept_before("matrix", at, "m"), **kept_before("column", at, "j")}
        for value in ready:
            if value.op == "input" and value.kind in ("element", "row", "column"):
                index = {"element": "i", "row": "r", "column": "j"}[value.kind]
                loads[value] = f"LOAD({value.name}_column[{index}])"
        return loads

    names = {value: ("h_" if value.kind == "call" else "n_") + value.name
             for value in ready if value.op == "input" and value.kind in ("call", "tensor")}
    top = _Scope(names, None, {})
    body = generate._hyperparameters(trace) + [
        "STORAGE *restrict param_column = row[0], *restrict grad_column = row[1];",
        f"STORAGE *restrict {row_field}_column = row[2], *restrict {column_field}_column = row[3];",
        "const double n_size __attribute__((unused)) = (double)n;"]
    body += [f"const double n_{field} = (options & OPTION_STEP_F64) ? *(double *)row[{5 + k}] : *(float *)row[{5 + k}];"
             for k, field in enumerate(trace.scalar_state)]
    body += ["const int64_t rows = n > 0 ? n / width : 0, matrices = n > 0 ? rows / height : 0;",
             *(f"REAL *{kind}_values = malloc(sizeof(REAL) * (size_t)({count}) * {slots[kind]});"
               for kind, count in (("row", "rows"), ("column", "matrices * width"), ("matrix", "matrices")))]
    passes = [[value for value in ready if value.op == "sum" and ready[value.args[0]] == 4 * p] for p in range(last + 1)]
    body.append(f"double *partial = malloc(sizeof(double) * (size_t)(rows > 0 ? rows : 1) * "
                f"{max(1, *map(len, passes))});  /* each row's part of the pass's sums */")
    parallel = "#pragma omp parallel for schedule(static) num_threads(threads) if (n >= 2 * CHUNK)"
    for p, sums in enumerate(passes):
        start = 4 * p
        row_sums = [value for value in ready if value.op == "mean-1" and value.args[0].kind == "element"
                    and ready[value.args[0]] == start]
        column_sums = [value for value in ready if value.op == "mean-2" and value.args[0].kind == "element"
                       and ready[value.args[0]] == start]
        saved_rows = [value for value in kept["row"] if ready[value] in (start, start + _ROW_END)]
        stores = [path.param] if p == last else []
        targets = [value.args[0] for value in sums + row_sums] + stores
        ends = saved_rows + [value for value in kept["column"] if ready[value] == start + _STRIP_END]
        top.hoist(targets + [value.args[0] for value in column_sums] + ends
                  + [value for value in kept["matrix"] if ready[value] == start + _BETWEEN], ("call", "tensor"))
        body += top.lines
        top.lines = []
        if column_sums:  # before the row loop, which writes the parameters in the last pass
            body += _strips(top, reads(start), column_sums, kept, slots,
                            [value for value in kept["column"] if ready[value] == start + _STRIP_END])
        # The row loop.
        row_scope = top.child(loads=reads(start))
        row_scope.hoist(targets, ("row", "matrix"))
        element = row_scope.child()
        adds = [f"a{k} += (double){element.name(value.args[0])};" for k, value in enumerate(sums)]
        adds += [f"b{k} += (double){element.name(value.args[0])};" for k, value in enumerate(row_sums)]
        if stores:
            adds.append(f"param_column[i] = STORE_PARAM({element.name(path.param)}, tensor, i);")
        accumulators = [f"a{k}" for k in range(len(sums))] + [f"b{k}" for k in range(len(row_sums))]
        end = row_scope.child(loads={value: f"(REAL)(b{k} / (double)width)" for k, value in enumerate(row_sums)})
        saves = [f"row_values[r * {slots['row']} + {kept['row'][value]}] = {end.name(value)};" for value in saved_rows]
        loop = ["const int64_t m = r / height;"] + row_scope.lines
        loop += [f"double {accumulator} = 0;" for accumulator in accumulators]
        if accumulators:  # the sums may be reordered within a row: the loop vectorizes
            loop.append(f"#pragma omp simd reduction(+ : {', '.join(accumulators)})")
        loop += ["for (int64_t c = 0; c < width; c++) {",
                 "    const int64_t i = r * width + c, j = m * width + c;"]
        loop += _indent(element.lines + adds, 1) + ["}"]
        loop += [f"partial[r * {len(sums)} + {k}] = a{k};" for k in range(len(sums))] + end.lines + saves
        body += [parallel, "for (int64_t r = 0; r < rows; r++) {"] + _indent(loop, 1) + ["}"]
        for k, value in enumerate(sums):  # in row order: the same sum on any number of threads
            top.names[value] = f"q{next(top.counter)}"
            body += [f"double {top.names[value]} = 0;",
                     f"for (int64_t r = 0; r < rows; r++) {top.names[value]} += partial[r * {len(sums)} + {k}];"]
        body += _matrices(top, reads(start + _BETWEEN), kept, slots,
                          [value for value in kept["matrix"] if ready[value] == start + _BETWEEN])
    for field, value in outputs.items():  # the new row and column state, from where it was kept
        if value.op == "input" and value.name == field:
            continue
        kind = value.kind
        count = "rows" if kind == "row" else "matrices * width"
        body.append(f"for (int64_t x = 0; x < {count}; x++) "
                    f"{field}_column[x] = STORE({kind}_values[x * {slots[kind]} + {kept[kind][value]}]);")
    for k, field in enumerate(trace.scalar_state):
        new = top.name(path.state[field])
        body += top.lines + [f"if (options & OPTION_STEP_F64) *(double *)row[{5 + k}] = {new}; "
                             f"else *(float *)row[{5 + k}] = (float){new};"]
        top.lines = []
    body += ["free(partial);", "free(row_values);", "free(column_values);", "free(matrix_values);"]
    return (["static void NAME(matrix_step)(void **row, int64_t n, int64_t width, int64_t height, "
             "const double *scalars, int64_t options, int threads, int64_t tensor) {"]
            + _indent(body, 1) + ["}", ""])


def _strips(top: _Scope, loads: dict, column_sums: list, kept: dict, slots: dict, saved: list) -> list[str]:
    """The loop over strips of columns: each column's sums over its matrix's rows, then its
    means and the column values kept from them."""
    row_scope = top.child(loads=loads)
    row_scope.hoist([value.args[0] for value in column_sums], ("row", "matrix"))
    element = row_scope.child()
    adds = [f"sums[c - start][{k}] += (double){element.name(value.args[0])};" for k, value in enumerate(column_sums)]
    end = top.child(loads={**loads, **{value: f"(REAL)(sums[c - start][{k}] / (double)height)"
                                       for k, value in enumerate(column_sums)}})
    saves = [f"column_values[j * {slots['column']} + {kept['column'][value]}] = {end.name(value)};" for value in saved]
    rows = (["const int64_t i = r * width + c, j = m * width + c;"] + element.lines + adds)
    strip = ([f"const int64_t m = s / strips, start = s % strips * {STRIP};",
              f"const int64_t end = start + {STRIP} < width ? start + {STRIP} : width;",
              f"double sums[{STRIP}][{len(column_sums)}] = {{{{0}}}};",
              "for (int64_t r = m * height; r < (m + 1) * height; r++) {"]
             + _indent(row_scope.lines + ["for (int64_t c = start; c < end; c++) {"] + _indent(rows, 1) + ["}"], 1)
             + ["}", "for (int64_t c = start; c < end; c++) {"]
             + _indent(["const int64_t j = m * width + c;"] + end.lines + saves, 1) + ["}"])
    # Each (matrix, strip) a task: wide matrices split by strips, many small ones spread too.
    return (["{", f"    const int64_t strips = (width + {STRIP - 1}) / {STRIP};",
             "    #pragma omp parallel for schedule(static) num_threads(threads) if (n >= 2 * CHUNK)",
             "    for (int64_t s = 0; s < matrices * strips; s++) {"] + _indent(strip, 2) + ["    }", "}"])


def _matrices(top: _Scope, loads: dict, kept: dict, slots: dict, saved: list) -> list[str]:
    """Each matrix's means of its kept rows or columns, and the matrix values kept from them."""
    if not saved:
        return []
    means = sorted({value for value in _below(saved) if value.op in REDUCTIONS and value.kind == "matrix"},
                   key=lambda value: repr(value))
    lines, mean_loads = [], {}
    for k, value in enumerate(means):
        summed = value.args[0]
        count, index = ("height", "m * height + x") if summed.kind == "row" else ("width", "m * width + x")
        read = (f"LOAD({summed.name}_column[{index}])" if summed.op == "input"
                else f"{summed.kind}_values[({index}) * {slots[summed.kind]} + {kept[summed.kind][summed]}]")
        lines += [f"double d{k} = 0;", f"for (int64_t x = 0; x < {count}; x++) d{k} += (double){read};"]
        mean_loads[value] = f"(REAL)(d{k} / (double){count})"
    scope = top.child(loads={**loads, **mean_loads})
    saves = [f"matrix_values[m * {slots['matrix']} + {kept['matrix'][value]}] = {scope.name(value)};" for value in saved]
    return (["for (int64_t m = 0; m < matrices; m++) {"] + _indent(lines + scope.lines + saves, 1) + ["}"])


def _below(values: list):
    """Every value ``values`` depend on, down to the reductions (which are included)."""
    stack, seen = list(values), set()
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        yield value
        if value.op not in REDUCTIONS:
            stack.extend(value.args)

