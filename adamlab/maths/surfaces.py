"""Losses of two parameters, for races of optimizers drawn on a plane, and the parabola of one.

Each is a function of the two numbers ``x`` and ``y`` written with + - * / alone, so the one
statement runs on floats, on NumPy arrays (the whole plane at once, to draw it) and on torch
tensors (``adamlab race``, whose gradients torch's autograd takes), and rounds alike in each:
powers are written as products, since ``x ** 3`` is rounded differently by C's pow, NumPy's,
torch's and JavaScript's. The explorer's page gets each
printed in JavaScript with its gradient, which the printer derives from this same expression
(``adamlab.kernels.javascript.gradient``); a test holds that gradient to autograd's.

>>> rosenbrock(1.0, 1.0), himmelblau(3.0, 2.0)
(0.0, 0.0)
"""


def parabola(w):
    """The lessons' problem of one parameter, w^2, least at 0: on it Adam's step is about lr
    whatever the gradient, while momentum's velocity gathers the gradients and runs ahead."""
    return w * w


def rosenbrock(x, y):
    """Rosenbrock's banana valley: a curved, nearly flat floor, least at (1, 1)."""
    short, off_floor = 1 - x, y - x * x  # x short of 1; y off the valley's floor y = x^2
    return short * short + 100 * (off_floor * off_floor)


def bowl(x, y):
    """An ill-conditioned bowl: 40 times steeper across than along, least at (0, 0). One
    learning rate cannot suit both directions, unless each parameter has its own scale."""
    return 0.05 * (x * x) + 2 * (y * y)


def saddle(x, y):
    """A saddle at (0, 0) between two valleys, least at (0, +-sqrt(2)): a start near y = 0 meets a
    gradient that nearly vanishes across, which a step divided by the gradient's own scale escapes."""
    return x * x - y * y + (y * y) * (y * y) / 4


def beale(x, y):
    """Beale's function: flat plateaus and steep walls, least at (3, 0.5)."""
    first, second, third = 1.5 - x + x * y, 2.25 - x + x * (y * y), 2.625 - x + x * (y * y * y)
    return first * first + second * second + third * third


def himmelblau(x, y):
    """Himmelblau's function: four minima of 0, at (3, 2) and three others; where a run ends
    depends on where it starts."""
    first, second = x * x + y - 11, x + y * y - 7
    return first * first + second * second
