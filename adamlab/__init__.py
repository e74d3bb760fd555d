"""adamlab: the Adam family of optimizers, to use, understand and trust.

``adamlab.AdamW`` drops in for ``torch.optim.AdamW`` (and likewise ``SGD``,
``Adagrad``, ``RMSprop``, ``Adam``, ``NAdam``, ``RAdam``, ``Adamax``);
``adamlab.maths`` holds the readable maths they all run; ``param_groups`` and
the schedules (``warmup_cosine``, ``linear_decay``, ``warmup_constant``, driven
by ``drive``) are the standard recipe around them; ``adamlab trace`` and
``adamlab train`` show them at work.
"""

__version__ = "0.1.0"  # first: modules imported below read it

from .optim import (ADOPT, LAMB, SGD, AdEMAMix, LaProp, Adafactor, Adagrad, Adam, Adam8bit, AdamAtan2, AdamMini, Adamax, AdamW, AdamW8bit, AdamWScheduleFree, Hybrid, Lion, MARS, Muon, NAdam, Prodigy, RAdam,
                    RMSprop, StableAdamW, StepRefused)
from .recipe import drive, hidden_matrices, linear_decay, param_groups, warmup_constant, warmup_cosine

__all__ = ["ADOPT", "AdEMAMix", "SGD", "Adafactor", "Adagrad", "Adam", "Adam8bit", "AdamAtan2", "AdamMini", "AdamW", "AdamW8bit", "AdamWScheduleFree", "Adamax", "LAMB", "Hybrid", "LaProp", "Lion", "MARS", "Muon", "NAdam",
           "Prodigy", "RAdam", "RMSprop", "StableAdamW", "StepRefused", "__version__", "drive", "hidden_matrices", "linear_decay", "param_groups",
           "warmup_constant", "warmup_cosine"]
