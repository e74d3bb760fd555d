"""The maths of every optimizer, each written once as a pure ``init`` and ``update``.

``update(grad, state, param, **hyperparameters)`` returns a :class:`Step`: the
new parameter, the new state and the named intermediates of the formula. It
uses only arithmetic and :mod:`adamlab.maths.ops`, so the same function is the
float64 NumPy reference (``init`` builds its state) and, called on tensors, the
maths inside adamlab's torch optimizers.

>>> import numpy as np
>>> from adamlab.maths import adam
>>> step = adam.update(np.float64(0.5), adam.init(1.0), np.float64(1.0), lr=0.001)
>>> round(float(step.param), 6)
0.999
"""

from . import adafactor, adagrad, adam, adam8bit, adamatan2, adammini, adamax, ademamix, adopt, lamb, laprop, lion, mars, moments, muon, nadam, prodigy, quantize, radam, rmsprop, schedulefree, sgd, stableadamw
from .hyperparameters import InvalidHyperparameter, check
from .step import Step

__all__ = ["Step", "InvalidHyperparameter", "adafactor", "adagrad", "adam", "adam8bit", "adamatan2", "adammini", "adamax", "ademamix", "adopt", "check", "lamb", "laprop", "lion",
           "mars", "moments", "muon", "nadam", "prodigy", "quantize", "radam", "rmsprop", "schedulefree", "sgd", "stableadamw"]
