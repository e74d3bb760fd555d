"""Experiments that show what the optimizers do, computed by adamlab's own maths."""
