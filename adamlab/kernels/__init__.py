"""Fused optimizer steps: every tensor of a parameter group updated in one pass, in native code.

Only the CPU has kernels so far (``cpu.c``, built with the system C compiler on first use and
cached); parameters elsewhere take the simple path, which runs ``adamlab.maths`` on tensors.
"""

from .cpu import KernelsUnavailable, fusable_dtype, library, run

__all__ = ["KernelsUnavailable", "fusable_dtype", "library", "run"]
