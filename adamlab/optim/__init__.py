"""adamlab's torch optimizers: drop-ins for torch.optim's classes of the same names."""

from .adagrad import Adagrad
from .adam import Adam, AdamW
from .base import Optimizer
from .lamb import LAMB
from .lion import Lion
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adagrad", "Adam", "AdamW", "LAMB", "Lion", "Optimizer", "RMSprop", "SGD"]
