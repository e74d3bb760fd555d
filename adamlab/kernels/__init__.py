"""Fused optimizer steps: every tensor of a parameter group updated in one pass.

On the CPU, C kernels built with the system C compiler on first use and cached, generated
from ``adamlab.maths``: ``symbolic.py`` traces an update, ``generate.py`` prints it as C, whole
or into hand-written loops such as 8-bit Adam's blocks, and ``factored.py`` prints the passes
over rows and columns of a factored state (Adafactor's). On CUDA, ``adamlab.maths`` itself compiled by torch.compile (``compiled.py``).
Parameters neither can take follow the simple path, which runs the maths on tensors.
"""

from .cpu import KernelsUnavailable, fusable_dtype, library, run

__all__ = ["KernelsUnavailable", "fusable_dtype", "library", "run"]
