"""What every update rule returns."""

from typing import Any, NamedTuple


class Step(NamedTuple):
    """One step of an optimizer on one parameter.

    ``quantities`` holds every intermediate of the formula under its name in the
    formula (``grad``, ``m``, ``v``, ``m_hat``, ``update``, ...): the trace prints
    them, the optimizers ignore them.
    """

    param: Any
    state: Any
    quantities: dict[str, Any]
