"""Every optimizer adamlab has, by its command-line name: the one table every command reads.

An entry says what its name makes (adamlab's class, and the settings the name fixes: "momentum"
is SGD with momentum 0.9), which maths that class runs, and what each of the generic knobs
(:data:`KNOBS`, which ``race``, ``trace`` and the explorer turn on every optimizer alike) means
for it: the constructor argument it sets and the maths argument it sets. ``beta2`` is Adam's
``betas[1]`` and ``beta2``, but RMSprop's ``alpha``; a knob an optimizer has no use for (beta1
for AdaGrad) is not in its entry.

>>> entry = get("rmsprop")
>>> entry.arguments({"beta2": 0.9})
{'alpha': 0.9}
>>> entry.maths_arguments({"beta2": 0.9}, lr=0.01)["alpha"]
0.9
"""

import contextlib
import inspect
from dataclasses import dataclass, field
from types import ModuleType
from typing import NamedTuple

import torch

from . import maths, optim
from .maths.hyperparameters import InvalidHyperparameter, check_known, keyword_arguments
from .recipe import hidden_matrices

#: The knobs race, trace and the explorer turn, and what each is about.
KNOBS = {"beta1": "first-moment decay", "beta2": "second-moment decay", "eps": "the denominator's epsilon",
         "weight_decay": "weight decay"}


class Knob(NamedTuple):
    """What one knob sets: the constructor's argument ("betas.0": the first of the pair betas)
    and the maths' argument."""

    argument: str
    maths: str


@dataclass(frozen=True)
class Entry:
    """One optimizer as the commands know it."""

    name: str
    make: type  # adamlab's class (adamlab.optim)
    maths: ModuleType  # the maths it runs (adamlab.maths)
    summary: str  # one line
    knobs: dict[str, Knob]
    #: constructor arguments the name fixes (momentum's 0.9, AMSGrad's amsgrad=True)
    settings: dict = field(default_factory=dict)
    #: maths arguments the name fixes, or class defaults that differ from the maths' (AdamW's
    #: decoupled decay of 0.01); a test pins the maths to the class step for step
    maths_settings: dict = field(default_factory=dict)
    #: where lr multiplies a step size the optimizer finds itself (Prodigy's d), the lr to race
    #: it with: the same on every problem
    own_step_size_lr: float | None = None
    #: its maths takes each parameter as a matrix (Muon's rows and columns, Adam-mini's blocks):
    #: the lessons hand it their number or point as one row
    matrix_maths: bool = False
    #: the explorer's page steps it itself, in JavaScript printed from its maths (not Muon's matrix
    #: products); the others it races on the server
    in_page: bool = True

    @property
    def takes_names(self) -> bool:
        """Its class takes ``model.named_parameters()`` (Adam-mini cuts its blocks by name)."""
        return next(iter(inspect.signature(self.make).parameters)) == "named_parameters"

    @property
    def matrices_only(self) -> bool:
        """Its class steps matrices and nothing else (Muon): :meth:`build` gives other tensors to AdamW."""
        return getattr(self.make, "matrices_only", False)

    def applicable(self, knobs: dict) -> dict:
        """Those of ``knobs`` that are set (not None) and mean something to this optimizer: a
        race sets a knob on every optimizer it applies to and leaves the others alone."""
        return {knob: value for knob, value in knobs.items() if value is not None and knob in self.knobs}

    def _set(self, knobs: dict | None) -> dict:
        """The knobs set (not None), each one that applies; a ValueError names any other."""
        knobs = {knob: value for knob, value in (knobs or {}).items() if value is not None}
        for knob in knobs:
            if knob not in KNOBS:
                raise ValueError(f"unknown knob {knob!r}; choose from {', '.join(KNOBS)}")
            if knob not in self.knobs:
                raise ValueError(f"{knob} does not apply to {self.name}; it takes {', '.join(self.knobs)}")
        return knobs

    def arguments(self, knobs: dict | None = None) -> dict:
        """The constructor arguments of the name's settings and of ``knobs`` (None: the default)."""
        arguments = dict(self.settings)
        for knob, value in self._set(knobs).items():
            name, _, index = self.knobs[knob].argument.partition(".")
            if index:  # one of a pair: the other stays as given, or the class's default
                pair = list(arguments.get(name, inspect.signature(self.make).parameters[name].default))
                pair[int(index)] = value
                value = tuple(pair)
            arguments[name] = value
        return arguments

    def build(self, params, knobs: dict | None = None, **arguments) -> torch.optim.Optimizer:
        """The optimizer over ``params``: the name's settings, ``knobs``, then ``arguments`` as
        the constructor takes them (lr, fused ...). A knob out of range is an
        :class:`InvalidHyperparameter` naming the knob (beta2), not the argument it set (alpha).

        Tensors are given as the class takes them: named by position where it takes named
        parameters (Adam-mini); where it steps matrices only (Muon), the matrices, the rest to
        AdamW at the same lr, the two as one :class:`adamlab.Hybrid` (AdamW alone if no matrix)."""
        params = list(params)
        if self.matrices_only and all(isinstance(param, torch.Tensor) for param in params):
            others = [param for param in params if param.ndim != 2]
            if others:
                return self._with_adamw([param for param in params if param.ndim == 2], others, knobs, arguments)
        if self.takes_names:  # a tensor given without a name is one block
            params = [param if isinstance(param, tuple) else (f"param{number}", param)
                      for number, param in enumerate(params)]
        with named_as(self._error_names()):
            return self.make(params, **{**self.arguments(knobs), **arguments})

    def for_model(self, model: torch.nn.Module, knobs: dict | None = None, **arguments) -> torch.optim.Optimizer:
        """The optimizer over ``model``'s trainable parameters as it is meant to train a model: Muon
        over the hidden matrices (:func:`adamlab.hidden_matrices`), AdamW at the same lr over the
        rest; Adam-mini over the named parameters; the others over them all."""
        if self.matrices_only:
            return self._with_adamw(*hidden_matrices(model), knobs, arguments)
        if self.takes_names:
            return self.build([(name, param) for name, param in model.named_parameters() if param.requires_grad],
                              knobs, **arguments)
        return self.build([param for param in model.parameters() if param.requires_grad], knobs, **arguments)

    def _with_adamw(self, matrices: list, others: list, knobs: dict | None, arguments: dict) -> torch.optim.Optimizer:
        """This optimizer of matrices over ``matrices`` and AdamW over ``others``, at the same lr (and
        weight decay, where a knob sets it), as one :class:`adamlab.Hybrid`; either alone where the
        other has nothing to step."""
        if not others:  # (nothing at all: the class's own error)
            return self.build(matrices, knobs, **arguments)
        decay = {"weight_decay": knobs["weight_decay"]} if (knobs or {}).get("weight_decay") is not None else {}
        rest = get("adamw").build(others, decay, **{name: value for name, value in arguments.items()
                                                    if name in ("lr", "maximize")})
        return optim.Hybrid(self.build(matrices, knobs, **arguments), rest) if matrices else rest

    def maths_arguments(self, knobs: dict | None = None, **arguments) -> dict:
        """Every keyword argument of the maths' ``update``: its defaults, the name's settings,
        ``arguments`` (lr ...) and ``knobs``, checked (errors name the knob, as :meth:`build`)."""
        values = keyword_arguments(self.maths.update)
        values.update(self.maths_settings)
        values.update(arguments)
        for knob, value in self._set(knobs).items():
            values[self.knobs[knob].maths] = value
        with named_as(self._error_names()):
            check_known(values)
        return values

    def _error_names(self) -> dict[str, str]:
        """The names a range error may give each knob's argument ("betas[1]", "alpha", "eps2")."""
        names = {}
        for knob, (argument, maths_argument) in self.knobs.items():
            name, _, index = argument.partition(".")
            names[f"{name}[{index}]" if index else name] = names[maths_argument] = knob
        return names


@contextlib.contextmanager
def named_as(names: dict[str, str]):
    """Re-raise an :class:`InvalidHyperparameter` under the name the person set it by.

    ``names`` maps the optimizer's argument to that name: RMSprop's ``alpha`` is set as beta2, so
    its error must say beta2, not an alpha the person never typed.

    >>> from adamlab.maths import check
    >>> with named_as({"alpha": "beta2"}):
    ...     check(alpha=1.5)
    Traceback (most recent call last):
    ...
    adamlab.maths.hyperparameters.InvalidHyperparameter: beta2 must be in [0, 1], got 1.5
    """
    try:
        yield
    except InvalidHyperparameter as error:
        if error.name not in names:
            raise
        raise InvalidHyperparameter(names[error.name], error.value, error.allowed) from None


_DECAY = {"weight_decay": Knob("weight_decay", "weight_decay")}
_ADAM = {"beta1": Knob("betas.0", "beta1"), "beta2": Knob("betas.1", "beta2"), "eps": Knob("eps", "eps"), **_DECAY}
#: AdamW's difference from Adam, for the maths (the class has it built in).
_DECOUPLED = {"decoupled_weight_decay": True, "weight_decay": 0.01}

def _by_name(*entries: Entry) -> dict[str, Entry]:
    table = {}
    for entry in entries:
        if entry.name in table:  # a dict would keep the second silently
            raise ValueError(f"two optimizers are named {entry.name!r}")
        table[entry.name] = entry
    return table


# The first eight in the order the explorer has always listed (and coloured) them.
OPTIMIZERS = _by_name(
    Entry("sgd", optim.SGD, maths.sgd, "plain gradient descent: theta -= lr * g", _DECAY),
    Entry("momentum", optim.SGD, maths.sgd, "SGD with heavy-ball momentum 0.9 (beta1): v = 0.9 v + g, theta -= lr * v",
          {"beta1": Knob("momentum", "momentum"), **_DECAY}, {"momentum": 0.9}, {"momentum": 0.9}),
    Entry("adagrad", optim.Adagrad, maths.adagrad, "AdaGrad: lr over the root of all past g^2",
          {"eps": Knob("eps", "eps"), **_DECAY}),
    Entry("rmsprop", optim.RMSprop, maths.rmsprop,
          "RMSprop: lr over the root of a moving average of g^2 (beta2 is alpha)",
          {"beta2": Knob("alpha", "alpha"), "eps": Knob("eps", "eps"), **_DECAY}),
    Entry("adam", optim.Adam, maths.adam, "Adam: bias-corrected momentum over bias-corrected RMS", _ADAM),
    Entry("adamw", optim.AdamW, maths.adam, "AdamW: Adam with decoupled weight decay (default 0.01)", _ADAM,
          maths_settings=_DECOUPLED),
    Entry("amsgrad", optim.Adam, maths.adam, "AMSGrad: Adam dividing by the largest v so far", _ADAM,
          {"amsgrad": True}, {"amsgrad": True}),
    Entry("lion", optim.Lion, maths.lion, "Lion: steps of lr along the sign of an interpolated momentum",
          {"beta1": Knob("betas.0", "beta1"), "beta2": Knob("betas.1", "beta2"), **_DECAY}),
    Entry("nadam", optim.NAdam, maths.nadam, "NAdam: Adam whose momentum looks a step ahead, as Nesterov's does",
          _ADAM),
    Entry("radam", optim.RAdam, maths.radam,
          "RAdam: Adam whose adaptive step is rectified, plain momentum while v is too young to trust", _ADAM),
    Entry("adamax", optim.Adamax, maths.adamax, "Adamax: Adam dividing by a decaying maximum of |g| (beta2 decays it)",
          _ADAM),
    Entry("lamb", optim.LAMB, maths.lamb, "LAMB: Adam's step rescaled per tensor by ||theta|| / ||step||", _ADAM),
    Entry("adafactor", optim.Adafactor, maths.adafactor,
          "Adafactor: a factored second moment (a row and a column per matrix), steps relative to RMS(theta) "
          "(eps is eps2; beta1 adds a first moment)",
          {"beta1": Knob("beta1", "beta1"), "eps": Knob("eps.1", "eps2"), **_DECAY}),
    Entry("adam8bit", optim.Adam8bit, maths.adam8bit, "8-bit Adam: Adam with m and v kept in 8 bits, block-wise",
          _ADAM),
    Entry("adamw8bit", optim.AdamW8bit, maths.adam8bit, "8-bit AdamW: AdamW with m and v kept in 8 bits, block-wise",
          _ADAM, maths_settings=_DECOUPLED),
    Entry("adopt", optim.ADOPT, maths.adopt,
          "ADOPT: each gradient divided by the RMS of those before it (clipped), then averaged", _ADAM),
    Entry("laprop", optim.LaProp, maths.laprop,
          "LaProp: the momentum of gradients already divided by their RMS (decoupled decay)", _ADAM),
    Entry("ademamix", optim.AdEMAMix, maths.ademamix,
          "AdEMAMix: Adam's fast average of the gradients plus alpha times a slow one (beta3 0.9999)", _ADAM),
    Entry("stableadamw", optim.StableAdamW, maths.stableadamw,
          "StableAdamW: AdamW with lr divided, per tensor, by the RMS of g^2 / v where it exceeds 1", _ADAM),
    Entry("adamatan2", optim.AdamAtan2, maths.adamatan2,
          "Adam-atan2: Adam's step as the angle atan2(m_hat, sqrt(v_hat)), with no eps",
          {"beta1": Knob("betas.0", "beta1"), "beta2": Knob("betas.1", "beta2"), **_DECAY}),
    Entry("schedulefree", optim.AdamWScheduleFree, maths.schedulefree,
          "Schedule-Free AdamW: no lr schedule; steps z, trains at y between z and x, their average", _ADAM),
    Entry("prodigy", optim.Prodigy, maths.prodigy,
          "Prodigy: Adam whose step size d it estimates as it goes, from 1e-6 up (lr multiplies d: 1)", _ADAM,
          own_step_size_lr=1.0),
    Entry("mars", optim.MARS, maths.mars,
          "MARS: AdamW on the gradient plus gamma times its change since the last step, clipped to norm 1", _ADAM),
    Entry("muon", optim.Muon, maths.muon,
          "Muon: Nesterov momentum (beta1 0.95) orthogonalised by Newton-Schulz, for matrices (the rest: AdamW); "
          "a vector's orthogonalisation is its direction",
          {"beta1": Knob("momentum", "momentum"), **_DECAY}, {"adjust_lr_fn": "match_rms_adamw"},
          {"adjust_lr_fn": "match_rms_adamw"}, matrix_maths=True, in_page=False),
    Entry("adammini", optim.AdamMini, maths.adammini,
          "Adam-mini: Adam with one v per block (a head, a neuron; a tensor of unknown name is one block)",
          _ADAM, matrix_maths=True),
)


def get(name: str) -> Entry:
    """The optimizer called ``name``; a ValueError listing the names for any other."""
    if name not in OPTIMIZERS:
        raise ValueError(f"unknown optimizer {name!r}; choose from {', '.join(OPTIMIZERS)}")
    return OPTIMIZERS[name]


def knob_help(knob: str) -> str:
    """What ``knob`` is, and where it sets an argument of another name: for --help.

    >>> knob_help("beta2")
    "second-moment decay (rmsprop's alpha)"
    """
    others = [f"{entry.name}'s {entry.knobs[knob].maths}" for entry in OPTIMIZERS.values()
              if knob in entry.knobs and entry.knobs[knob].maths != knob]
    return KNOBS[knob] + (f" ({', '.join(others)})" if others else "")
