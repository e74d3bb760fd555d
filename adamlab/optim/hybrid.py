"""Several optimizers stepped, scheduled and checkpointed as one: Muon or MARS for a model's
hidden matrices beside AdamW for the rest."""

from collections.abc import Iterator, Mapping

import torch

from .base import evaluate


class _States(Mapping):
    """The optimizers' states read as one mapping, parameter -> state, without copying them."""

    def __init__(self, optimizers):
        self.optimizers = optimizers

    def __getitem__(self, param):
        for optimizer in self.optimizers:
            if param in optimizer.state:  # `in` first: reading a defaultdict would add the key
                return optimizer.state[param]
        raise KeyError(param)

    def __iter__(self) -> Iterator:
        for optimizer in self.optimizers:
            yield from optimizer.state

    def __len__(self) -> int:
        return sum(len(optimizer.state) for optimizer in self.optimizers)


class Hybrid(torch.optim.Optimizer):
    r"""Optimizers over disjoint parameters, used as one: ``step``, ``zero_grad``, a torch LR
    scheduler, ``state_dict`` and ``load_state_dict`` reach every one of them.

    ``param_groups`` are the optimizers' own groups, in order, so a scheduler that sets each
    group's lr sets theirs (a LambdaLR's factor scales Muon's lr of 0.02 and AdamW's of 3e-3
    alike). ``step`` evaluates a closure once and steps each optimizer in turn; one that
    refuses its step (adamlab's check everything first) stops the ones after it, but not one
    that has already stepped.

    Example (the nanoGPT speedrun's split)::

        matrices, others = adamlab.hidden_matrices(model)
        optimizer = adamlab.Hybrid(adamlab.Muon(matrices, lr=0.02, weight_decay=0.0),
                                   adamlab.AdamW(others, lr=3e-3, betas=(0.9, 0.95)))
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, adamlab.warmup_cosine(100, 1000))
    """

    def __init__(self, *optimizers: torch.optim.Optimizer):
        if not optimizers:
            raise ValueError("Hybrid needs at least one optimizer")
        for position, optimizer in enumerate(optimizers):
            if not isinstance(optimizer, torch.optim.Optimizer) or isinstance(optimizer, Hybrid):
                raise TypeError(f"optimizer {position} must be a torch.optim.Optimizer (not a Hybrid), "
                                f"got {type(optimizer).__name__}")
        # torch's constructor checks that no parameter is in two groups: of two optimizers, here
        super().__init__([{"params": list(group["params"])} for optimizer in optimizers
                          for group in optimizer.param_groups], {})
        self.optimizers = optimizers
        self._gather()

    def _gather(self) -> None:
        """Take the optimizers' groups and states as this one's (again after loading replaced them)."""
        self.param_groups = [group for optimizer in self.optimizers for group in optimizer.param_groups]
        self.state = _States(self.optimizers)

    def add_param_group(self, param_group: dict) -> None:
        if "optimizers" in self.__dict__:  # torch's constructor adds the groups it was given
            raise TypeError("add the group to one of the Hybrid's optimizers: Hybrid cannot tell which rule it takes")
        super().add_param_group(param_group)

    @torch.no_grad()
    def step(self, closure=None):
        """Step every optimizer; ``closure`` is evaluated once, first, and its loss returned."""
        loss = evaluate(closure)
        for optimizer in self.optimizers:
            optimizer.step()
        return loss

    def state_dict(self) -> dict:
        """Each optimizer's state_dict, in order, under ``"optimizers"``."""
        return {"optimizers": [optimizer.state_dict() for optimizer in self.optimizers]}

    def load_state_dict(self, state_dict: dict) -> None:
        """Load what :meth:`state_dict` saved, into each optimizer in turn; all are checked
        (adamlab's optimizers check without loading) before any loads."""
        saved = state_dict.get("optimizers") if isinstance(state_dict, Mapping) else None
        if not isinstance(saved, list) or len(saved) != len(self.optimizers):
            raise ValueError(f"Hybrid.load_state_dict expects {{'optimizers': [...]}} with {len(self.optimizers)} "
                             f"state_dicts (from Hybrid.state_dict()), got "
                             f"{type(state_dict).__name__ if saved is None else f'{len(saved)}'}")
        for optimizer, its in zip(self.optimizers, saved):
            check = getattr(optimizer, "_check_loadable", None)
            if check is not None:
                check(its)
        for optimizer, its in zip(self.optimizers, saved):
            optimizer.load_state_dict(its)
        self._gather()

    def __repr__(self) -> str:
        inner = "\n".join("    " + repr(optimizer).replace("\n", "\n    ") for optimizer in self.optimizers)
        return f"Hybrid(\n{inner}\n)"
