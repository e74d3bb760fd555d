"""adamlab's torch optimizers: drop-ins for torch.optim's classes of the same names."""

from .adafactor import Adafactor
from .adagrad import Adagrad
from .adam import Adam, AdamW
from .adamatan2 import AdamAtan2
from .adammini import AdamMini
from .adam8bit import Adam8bit, AdamW8bit
from .adamax import Adamax
from .ademamix import AdEMAMix
from .adopt import ADOPT
from .base import Optimizer, StepRefused
from .lamb import LAMB
from .laprop import LaProp
from .hybrid import Hybrid
from .lion import Lion
from .mars import MARS
from .muon import Muon
from .nadam import NAdam
from .prodigy import Prodigy
from .radam import RAdam
from .rmsprop import RMSprop
from .schedulefree import AdamWScheduleFree
from .sgd import SGD
from .stableadamw import StableAdamW

__all__ = ["ADOPT", "AdEMAMix", "Adafactor", "Adagrad", "Adam", "Adam8bit", "AdamAtan2", "AdamMini", "AdamW", "AdamW8bit", "AdamWScheduleFree", "Adamax", "Hybrid", "LAMB", "LaProp", "Lion", "MARS", "Muon", "NAdam", "Optimizer", "Prodigy",
           "RAdam", "RMSprop", "SGD", "StableAdamW", "StepRefused"]
