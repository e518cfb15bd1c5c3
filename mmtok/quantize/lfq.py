"""Lookup-free (LFQ) and binary spherical (BSQ) quantization with a factorised entropy loss.

Each of the `bits` latent channels is quantised to its sign, so the id is the bit pattern and no
codebook is searched. The entropy regulariser needs the soft assignment over all 2^bits codes;
vector-quantize-pytorch materialises it as an (N, 2^bits) tensor (16 GiB at 65k tokens and 2^16
codes). Here the bits are split into groups and each group's 2^group_bits assignment is formed
separately, so cost grows with groups x 2^group_bits. The per-sample entropy factorises exactly
(the soft assignment is a product over bits); the batch ("codebook") entropy is replaced by the
sum of the groups' marginal entropies, an upper bound that is exact when groups are independent
(BSQ, Zhao et al. 2024).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mmtok import distributed
from mmtok.quantize.base import Quantizer, QuantizerOutput, zero_loss

# Up to this many bits the entropy is computed over the whole codebook at once (exact).
EXACT_ENTROPY_MAX_BITS = 12
DEFAULT_GROUP_BITS = 8


class BinaryQuantizer(Quantizer):
    """`spherical=False`: LFQ (codes in {-1, 1}^bits). `spherical=True`: BSQ (codes on the unit
    sphere, {-1, 1}^bits / sqrt(bits), inputs l2-normalised first)."""

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        spherical: bool = False,
        entropy_weight: float = 0.1,
        commitment_weight: float = 0.25,
        diversity_gamma: float = 1.0,
        inv_temperature: float = 100.0,
        entropy_group_bits: int | None = None,
    ):
        super().__init__()
        bits = int(round(math.log2(codebook_size))) if codebook_size > 0 else 0
        if codebook_size < 2 or 2**bits != codebook_size:
            raise ValueError(f"LFQ/BSQ codebook_size must be a power of two >= 2, got {codebook_size}")
        if bits > 62:
            raise ValueError(f"LFQ/BSQ supports up to 2^62 codes (int64 ids), got 2^{bits}")
        self.kind = "bsq" if spherical else "lfq"
        self.dim, self.num_codebooks, self.bits, self.spherical = dim, 1, bits, spherical
        self.entropy_weight, self.commitment_weight = entropy_weight, commitment_weight
        self.diversity_gamma, self.inv_temperature = diversity_gamma, inv_temperature
        if entropy_group_bits is None:
            entropy_group_bits = bits if bits <= EXACT_ENTROPY_MAX_BITS else DEFAULT_GROUP_BITS
        if not 1 <= entropy_group_bits <= min(bits, 16):
            raise ValueError(f"entropy_group_bits must be in [1, {min(bits, 16)}], got {entropy_group_bits}")
        self.group_sizes = [min(entropy_group_bits, bits - start) for start in range(0, bits, entropy_group_bits)]
        self.code_scale = 1.0 / math.sqrt(bits) if spherical else 1.0

        self.project_in = nn.Linear(dim, bits) if dim != bits else nn.Identity()
        self.project_out = nn.Linear(bits, dim) if dim != bits else nn.Identity()
        self.register_buffer("bit_weights", 2 ** torch.arange(bits - 1, -1, -1, dtype=torch.long), persistent=False)

    @property
    def codebook_size(self) -> int:
        return 2**self.bits

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        z = self.project_in(x).float()
        if self.spherical:
            z = F.normalize(z, dim=-1)
        positive = z > 0
        codes = self._bits_to_codes(positive)
        ids = (positive.long() * self.bit_weights).sum(dim=-1, keepdim=True)
        if not self.training:
            return QuantizerOutput(self.project_out(codes).to(x.dtype), ids, zero_loss(x), {})

        per_sample, codebook = factorised_entropy(z * (4.0 * self.inv_temperature * self.code_scale), self.group_sizes)
        commitment = F.mse_loss(z, codes)
        entropy_loss = per_sample - self.diversity_gamma * codebook
        loss = self.entropy_weight * entropy_loss + self.commitment_weight * commitment
        quantized = self.project_out(z + (codes - z).detach()).to(x.dtype)
        losses = {"per_sample_entropy": per_sample, "codebook_entropy": codebook, "commitment": commitment}
        return QuantizerOutput(quantized, ids, loss, losses)

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        positive = (ids[:, :1] & self.bit_weights) != 0
        return self.project_out(self._bits_to_codes(positive))

    def _bits_to_codes(self, positive: torch.Tensor) -> torch.Tensor:
        return (positive.float() * 2.0 - 1.0) * self.code_scale


def factorised_entropy(logits: torch.Tensor, group_sizes: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Entropies (nats) of the soft code assignment whose bits are independent Bernoullis.

    logits: (N, bits), bit b is 1 with probability sigmoid(logits[:, b]).
    Returns (mean per-sample entropy, sum over groups of the entropy of the batch-mean assignment).
    With a single group holding every bit the second term is the exact codebook entropy.
    """
    per_sample = logits.new_zeros(())
    codebook = logits.new_zeros(())
    log_on, log_off = F.logsigmoid(logits), F.logsigmoid(-logits)
    start = 0
    for size in group_sizes:
        patterns = _bit_patterns(size, logits.device)  # (2^size, size)
        on, off = log_on[:, start : start + size], log_off[:, start : start + size]
        log_probs = on @ patterns.T + off @ (1.0 - patterns).T  # (N, 2^size), rows sum to 1
        probs = log_probs.exp()
        per_sample = per_sample - (probs * log_probs).sum(dim=-1).mean()
        mean_probs = distributed.mean_keeping_grad(probs.mean(dim=0))
        codebook = codebook - (mean_probs * mean_probs.clamp_min(1e-12).log()).sum()
        start += size
    return per_sample, codebook


def _bit_patterns(size: int, device: torch.device) -> torch.Tensor:
    codes = torch.arange(2**size, device=device)
    weights = 2 ** torch.arange(size - 1, -1, -1, device=device)
    return ((codes[:, None] & weights) != 0).float()
