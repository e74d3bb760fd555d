"""AdamMini: the drop-in for the authors' ``adam_mini.Adam_mini`` (torch.optim has none)."""

import torch

from ..maths import adammini
from ..maths.hyperparameters import InvalidHyperparameter
from .base import Optimizer, evaluate
from .checks import StepRefused, _check_state_entry, _step_dtype


class AdamMini(Optimizer):
    r"""Adam-mini: Adam with one second moment per block (a head, a neuron), nearly half Adam's state.

    .. code-block:: text

        v     = beta2 v + (1 - beta2) mean(g^2 over the block)     one number per block
        theta = theta (1 - lr weight_decay) - lr m_hat / (sqrt(v_hat) + eps)

    Args:
        named_parameters: ``model.named_parameters()``: the names choose each tensor's blocks.
        lr: learning rate (default 1e-3).
        betas: (beta1, beta2) (default (0.9, 0.999)).
        eps: added to sqrt(v_hat) (default 1e-8).
        weight_decay: decoupled decay rate, for every tensor but norms and biases (default 0).
        dim: the model's width, for the heads' size dim * dim / n_heads (default 2048).
        n_heads: attention heads (default 32).
        n_kv_heads: key and value heads (grouped-query attention); None: n_heads (default).
        {maximize}

    Each tensor is a parameter group with its ``name`` and ``blocks``, cut by name as the
    authors' code cuts them (``adamlab.maths.adammini``): ``head`` for the query and key
    projections (names with q_proj, k_proj, wq, wk, query, key), ``neuron`` for embeddings
    (embed, embd, wte), the output layer (lm_head, output, final_layer), the value and output
    projections (v_proj, wv, value, o_proj, wo, attn.proj) and the MLP (feed_forward, linear,
    mlp), ``element`` (Adam's own) for biases, ``tensor`` for the rest (norms). A model named
    otherwise may set a group's ``blocks`` before the first step.

    Example::

        optimizer = adamlab.AdamMini(model.named_parameters(), lr=1e-3, weight_decay=0.1,
                                     dim=768, n_heads=12)
        loss_fn(model(x), y).backward()
        optimizer.step(); optimizer.zero_grad()

    Zhang et al., "Adam-mini: Use Fewer Learning Rates To Gain More" (ICLR 2025). The same steps
    as the authors' ``Adam_mini`` 1.1.1 on one process. State: ``step``, ``exp_avg`` (m, the
    parameter's shape) and ``exp_avg_sq`` (v, of shape (blocks, 1)), where the authors name them
    m and vmean (and v for biases). Its step runs as torch operations: no fused kernel yet.
    """

    maths = adammini
    state_fields = {"step": "step", "exp_avg": "m", "exp_avg_sq": "v"}
    elementwise = False
    fused_step = False
    kernel_limits = "Adam-mini's step has no fused kernel yet"

    #: Name fragments and the blocks they choose, in the authors' order of precedence.
    NAMES = (("element", ("bias",)),
             ("head", ("k_proj", "q_proj", "wq", "wk", "query", "key")),
             ("neuron", ("embed", "embd", "wte", "lm_head", "output", "final_layer", "v_proj", "wv", "value",
                         "o_proj", "wo", "attn.proj", "feed_forward", "linear", "mlp")))

    def __init__(self, named_parameters, lr: float | torch.Tensor = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, *, dim: int = 2048, n_heads: int = 32,
                 n_kv_heads: int | None = None, maximize: bool = False, fused: bool | None = None):
        for name, value in (("dim", dim), ("n_heads", n_heads)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise InvalidHyperparameter(name, value, "a whole number >= 1")
        if n_kv_heads is not None and (isinstance(n_kv_heads, bool) or not isinstance(n_kv_heads, int)
                                       or n_kv_heads < 1 or n_heads % n_kv_heads):
            raise InvalidHyperparameter("n_kv_heads", n_kv_heads, f"a whole number dividing n_heads ({n_heads}), or None")
        self.dim, self.n_heads, self.n_kv_heads = dim, n_heads, n_kv_heads or n_heads
        groups = []
        for item in named_parameters:
            if not (isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str)):
                raise TypeError(f"AdamMini takes model.named_parameters(): (name, parameter) pairs, got "
                                f"{type(item).__name__}")
            name, param = item[0].lower(), item[1]
            if param.requires_grad:
                decays = not any(part in name for part in ("norm", "ln", "bias"))
                groups.append({"params": [param], "name": name, "blocks": self.blocks_of(name),
                               "weight_decay": weight_decay if decays else 0.0})
        super().__init__(groups, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay, maximize=maximize,
                                      fused=fused))

    @classmethod
    def blocks_of(cls, name: str) -> str:
        """The blocks a tensor of this name is cut into."""
        for blocks, parts in cls.NAMES:
            if any(part in name for part in parts):
                return blocks
        return "tensor"

    def _check_group(self, group: dict) -> None:
        super()._check_group(group)
        if group.get("fused"):
            raise ValueError("adamlab.AdamMini has no fused step yet; leave fused=None")
        if group.get("blocks", "tensor") not in adammini.BLOCKS:
            raise InvalidHyperparameter("blocks", group["blocks"], f"one of {', '.join(adammini.BLOCKS)}")

    def _shape(self, param: torch.Tensor, group: dict) -> tuple[int, int]:
        return adammini.block_shape(tuple(param.shape), group["blocks"], self.dim * self.dim // self.n_heads)

    def _init_state(self, param: torch.Tensor, group: dict) -> dict:
        rows, _ = self._shape(param, group)
        return {"step": torch.zeros((), dtype=_step_dtype()), "exp_avg": torch.zeros_like(param),
                "exp_avg_sq": torch.zeros((rows, 1), dtype=param.dtype, device=param.device)}

    def _check_param_state(self, param_state: dict, param: torch.Tensor, group: dict, where: str) -> None:
        expected = {"step", "exp_avg", "exp_avg_sq"}
        if set(param_state) != expected:
            raise StepRefused(f"the state of {where} has keys {sorted(param_state)}, adamlab.AdamMini keeps "
                              f"{sorted(expected)}")
        rows, _ = self._shape(param, group)
        shape = tuple(param.shape)
        for key, value in param_state.items():
            _check_state_entry(key, value, (rows, 1) if key == "exp_avg_sq" else shape, where, shape)

    @torch.no_grad()
    def step(self, closure=None):
        """One step; every parameter's gradient, state and blocks checked before any changes."""
        loss = evaluate(closure)
        stepping = []
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._check_inputs(param, group)
                    try:
                        stepping.append((param, group, self._shape(param, group)))
                    except ValueError as error:
                        raise StepRefused(f"parameter {group['name']!r}: {error}") from None
        for param, group, shape in stepping:
            state = self.state[param] if self.state.get(param) else self._init_state(param, group)
            beta1, beta2 = group["betas"]
            new = adammini.update(param.grad.reshape(shape), adammini.State(
                state["step"].item(), state["exp_avg"].reshape(shape), state["exp_avg_sq"]), param.reshape(shape),
                lr=group["lr"], beta1=beta1, beta2=beta2, eps=group["eps"], weight_decay=group["weight_decay"],
                maximize=group["maximize"])
            param.copy_(new.param.view(param.shape))
            state["exp_avg"].copy_(new.state.m.view(param.shape))
            state["exp_avg_sq"].copy_(new.state.v)
            state["step"] += 1
            self.state[param] = state
        return loss
