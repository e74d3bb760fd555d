"""A small character-level GPT: token and position embeddings, pre-norm transformer blocks, no biases.

As in microgpt, the summed embeddings are normalized before the first block and
the last block feeds the output head directly: at this size that trains to a
lower loss than GPT-2's final norm before the head.
"""

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int
    block_size: int = 16
    n_layer: int = 1
    n_embd: int = 16
    n_head: int = 4
    norm: str = "rmsnorm"  # or "layernorm"
    init_std: float = 0.02  # of the weight matrices' normal initialization

    def __post_init__(self):
        if self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be a multiple of n_head ({self.n_head})")
        if self.norm not in ("rmsnorm", "layernorm"):
            raise ValueError(f"norm must be 'rmsnorm' or 'layernorm', got {self.norm!r}")


def _norm(config: GPTConfig) -> nn.Module:
    if config.norm == "rmsnorm":
        return nn.RMSNorm(config.n_embd)
    return nn.LayerNorm(config.n_embd, bias=False)


class CausalSelfAttention(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, time, channels = x.shape
        q, k, v = (part.view(batch, time, self.n_head, channels // self.n_head).transpose(1, 2)
                   for part in self.qkv(x).split(channels, dim=2))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.proj(y.transpose(1, 2).reshape(batch, time, channels))


class Block(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.attention_norm, self.mlp_norm = _norm(config), _norm(config)
        self.attention = CausalSelfAttention(config)
        self.mlp = nn.Sequential(nn.Linear(config.n_embd, 4 * config.n_embd, bias=False), nn.GELU(),
                                 nn.Linear(4 * config.n_embd, config.n_embd, bias=False))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.mlp(self.mlp_norm(x))


class GPT(nn.Module):
    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.token_embedding = nn.Embedding(config.vocab_size, config.n_embd)
        self.position_embedding = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.embedding_norm = _norm(config)
        self.head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                # GPT-2's initialization; the layers writing into the residual stream start smaller.
                residual = name.endswith(("proj.weight", "mlp.2.weight"))
                std = config.init_std / (2 * config.n_layer) ** 0.5 if residual else config.init_std
                nn.init.normal_(param, mean=0.0, std=std)

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None):
        """Logits for every position; with ``targets`` (-1 where padded), also the mean cross-entropy."""
        positions = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.embedding_norm(self.token_embedding(tokens) + self.position_embedding(positions))
        for block in self.blocks:
            x = block(x)
        logits = self.head(x)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.flatten(0, 1), targets.flatten(), ignore_index=-1)
        return logits, loss

    @torch.no_grad()
    def sample(self, count: int, generator: torch.Generator, temperature: float = 1.0) -> list[list[int]]:
        """Draw ``count`` token sequences, each from the boundary token 0 to the next 0 (or the block's end)."""
        device = self.head.weight.device
        tokens = torch.zeros(count, 1, dtype=torch.long, device=device)
        finished = torch.zeros(count, dtype=torch.bool, device=device)
        for _ in range(self.config.block_size):
            logits, _ = self(tokens)
            probabilities = F.softmax(logits[:, -1] / temperature, dim=-1)
            following = torch.multinomial(probabilities.cpu(), 1, generator=generator).to(device)
            following[finished] = 0
            tokens = torch.cat([tokens, following], dim=1)
            finished |= following.squeeze(1) == 0
            if finished.all():
                break
        sequences = []
        for row in tokens[:, 1:].tolist():
            sequences.append(row[: row.index(0)] if 0 in row else row)
        return sequences
