"""adamlab's torch optimizers: drop-ins for torch.optim's classes of the same names."""

from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adam8bit import Adam8bit, AdamW8bit
from .base import Optimizer, StepRefused
from .lamb import LAMB
from .lion import Lion
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adafactor", "Adagrad", "Adam", "Adam8bit", "AdamW", "AdamW8bit", "LAMB", "Lion", "Optimizer", "RMSprop", "SGD", "StepRefused"]
