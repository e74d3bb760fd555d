"""Cautious: a step's coordinates that disagree in sign with the gradient stay where they are.

    keep = u * g > 0                        u: the optimizer's update direction (Adam's m_hat)
    u    = u * keep * size(u) / (count(keep) + 1)

Liang et al., "Cautious Optimizers: Improving Training with One Line of Code" (2024). A momentum
method's update can point against this step's gradient, where the loss would rise to first
order; masking those coordinates keeps every step a descent direction, and the Hamiltonian
argument that makes Adam and Lion converge still holds. The kept coordinates are scaled by the
tensor's size over their count (plus one, so a mask of nothing divides by 1), which keeps the
step's average size, as the authors' code and pytorch-optimizer do it.
"""

from .ops import count, size, where


def masked(u, g):
    """``u`` where it agrees in sign with the gradient ``g``, 0 elsewhere, rescaled."""
    keep = u * g > 0
    return where(keep, u, 0.0) * (size(u) / (count(keep, u) + 1))
