"""Fused optimizer steps: every tensor of a parameter group updated in one pass.

On the CPU, C kernels built with the system C compiler on first use and cached: generated
from ``adamlab.maths`` for the elementwise update rules (``symbolic.py`` traces an update,
``generate.py`` prints it as C), hand-written (``cpu.c``) for what is more than elementwise maths. On CUDA, ``adamlab.maths`` itself compiled by torch.compile (``compiled.py``).
Parameters neither can take follow the simple path, which runs the maths on tensors.
"""

from .cpu import KernelsUnavailable, fusable_dtype, library, run

__all__ = ["KernelsUnavailable", "fusable_dtype", "library", "run"]
