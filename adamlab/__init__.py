"""adamlab: the Adam family of optimizers, to use, understand and trust.

``adamlab.AdamW`` drops in for ``torch.optim.AdamW`` (and likewise ``SGD``,
``Adagrad``, ``RMSprop``, ``Adam``); ``adamlab.maths`` holds the readable maths
they all run; ``adamlab trace`` shows it step by step.
"""

from .optim import SGD, Adagrad, Adam, AdamW, RMSprop

__version__ = "0.1.0"
__all__ = ["SGD", "Adagrad", "Adam", "AdamW", "RMSprop", "__version__"]
