"""The kinds vector-quantize-pytorch does well, behind mmtok's contract.

Every wrapper feeds the library a (1, N, dim) channel-last tensor (so none of its image/video
channel moves trigger) and converts what comes back: int32 ids become int64 with a codebook axis,
2/3-tuples become a QuantizerOutput, prefix ids of residual kinds decode with the dropped layers
masked out. `sync_codebook` is always passed explicitly: the library caches its distributed check
at first construction and would silently disable codebook sync for a quantizer built before the
process group. The library is imported when one of its kinds is built: importing it takes seconds
(einx loads torch._dynamo), which a tokenizer on mmtok's own kinds (vq, rvq, lfq, bsq) never pays.
"""

from __future__ import annotations

import math

import torch

from mmtok import distributed
from mmtok.quantize.base import Quantizer, QuantizerOutput, zero_loss

INT64_MAX = 2**63 - 1
# The library's residual FSQ materialises every code of every layer and indexes in int32.
LIBRARY_FSQ_MAX_CODES = 2**24


def check_fsq_levels(levels) -> list[int]:
    levels = [int(level) for level in levels]
    if not levels or any(level < 2 for level in levels):
        raise ValueError(f"FSQ levels must be a non-empty list of integers >= 2, got {levels}")
    size = math.prod(levels)
    if size > INT64_MAX:
        raise ValueError(f"FSQ levels {levels} give {size} codes, which overflows int64 ids (max {INT64_MAX})")
    return levels


def _usage_entropy(soft: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the usage that soft assignments (tokens, choices) give over the global batch."""
    usage = distributed.mean_keeping_grad(soft.mean(dim=0))
    return -(usage * torch.log(usage.clamp_min(1e-12))).sum()


class FiniteScalarQuantizer(Quantizer):
    """FSQ (Mentzer et al. 2023). The library's FSQ bounds, rounds and projects; mmtok computes
    the ids itself in int64 (the library's are int32 and need the whole implicit codebook in
    memory), so any product of levels that fits int64 works."""

    kind = "fsq"

    def __init__(
        self,
        dim: int,
        levels=(8, 5, 5, 5),
        usage_weight: float = 0.0,
        usage_temperature: float = 0.5,
        usage_over: str = "levels",
    ):
        super().__init__()
        levels = check_fsq_levels(levels)
        if usage_weight < 0 or usage_temperature <= 0:
            raise ValueError("usage_weight must be >= 0 and usage_temperature > 0")
        if usage_over not in ("levels", "codes"):
            raise ValueError(f"usage_over must be 'levels' or 'codes', got {usage_over!r}")
        self.dim, self.num_codebooks, self.levels = dim, 1, levels
        self.usage_weight, self.usage_temperature, self.usage_over = usage_weight, usage_temperature, usage_over
        from vector_quantize_pytorch import FSQ

        # Levels of 2 only round symmetrically in the library's symmetry-preserving mode.
        self.fsq = FSQ(levels=levels, dim=dim, return_indices=False, preserve_symmetry=2 in levels)
        basis = [math.prod(levels[:i]) for i in range(len(levels))]
        self.register_buffer("basis", torch.tensor(basis, dtype=torch.long), persistent=False)
        self.register_buffer("level_counts", torch.tensor(levels, dtype=torch.long), persistent=False)

    @property
    def codebook_size(self) -> int:
        return math.prod(self.levels)

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        z = self.fsq.project_in(x).float()
        codes = self.fsq.quantize(z)
        level_ids = self.fsq._scale_and_shift(codes.detach()).round().long()
        ids = (level_ids * self.basis).sum(dim=-1, keepdim=True)
        loss, losses = zero_loss(x), {}
        if self.usage_weight > 0 and self.training:
            losses["level_usage"] = self._level_usage_loss(z)
            loss = self.usage_weight * losses["level_usage"]
        return QuantizerOutput(self.fsq.project_out(codes.to(x.dtype)), ids, loss, losses)

    def _level_usage_loss(self, z: torch.Tensor) -> torch.Tensor:
        """1 - the entropy of each dimension's level usage over the batch (soft assignment of the
        value before rounding to its levels), normalised to [0, 1] and averaged over dimensions;
        with usage_over="codes", 1 - the normalised entropy of the codes' usage (the product of the
        dimensions' soft assignments, averaged over the batch): spread dimensions can still be
        correlated, and then most of the product's codes never occur.

        FSQ has no codebook to collapse, but a short run leaves most values near 0 (tanh's middle
        levels), so most codes never occur; spreading each dimension over its levels is what the
        library's FSQ does not offer. The continuous level position is the one the library rounds
        (`FSQ.bound` and `FSQ.symmetry_preserving_bound`), written again here because the library
        returns only the rounded value."""
        levels = self.level_counts.to(z.dtype)
        if self.fsq.preserve_symmetry:
            position = (levels - 1) * (torch.tanh(z) + 1) / 2
        else:
            half_l = (levels - 1) * (1 + 1e-3) / 2
            offset = (self.level_counts % 2 == 0).to(z.dtype) / 2
            position = torch.tanh(z + torch.atanh(offset / half_l)) * half_l - offset + self.level_counts // 2
        softs = []
        for d, count in enumerate(self.levels):
            grid = torch.arange(count, device=z.device, dtype=z.dtype)
            softs.append(torch.softmax(-((position[:, d, None] - grid) ** 2) / self.usage_temperature, dim=-1))
        if self.usage_over == "codes":
            # (tokens, codebook size): the batch's code distribution needs every token's product.
            joint = softs[0]
            for soft in softs[1:]:
                joint = (joint[:, :, None] * soft[:, None, :]).flatten(1)
            return 1 - _usage_entropy(joint) / math.log(joint.shape[-1])
        return torch.stack([1 - _usage_entropy(soft) / math.log(soft.shape[-1]) for soft in softs]).mean()

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        level_ids = (ids[:, :1] // self.basis) % self.level_counts
        codes = self.fsq._scale_and_shift_inverse(level_ids.float())
        return self.fsq.project_out(codes)


class _LibraryResidual(Quantizer):
    """Shared conversion for the library's residual kinds (ResidualFSQ, ResidualSimVQ)."""

    accepts_codebook_prefix = True

    def __init__(self, layer: torch.nn.Module, dim: int, num_codebooks: int, codebook_size: int):
        super().__init__()
        self.residual, self.dim, self.num_codebooks, self._codebook_size = layer, dim, num_codebooks, codebook_size

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        quantized, ids, *rest = self.residual(x[None])
        losses = {"commitment": rest[0].sum()} if rest else {}
        loss = rest[0].sum() if rest else zero_loss(x)
        ids = ids[0].long()
        # Eval output is rebuilt from the ids (the library's rotation trick is not exactly the code),
        # so decode_ids reproduces it bit for bit.
        quantized = quantized[0] if self.training else self._decode(ids).to(x.dtype)
        return QuantizerOutput(quantized, ids, loss, losses)

    def _quantize_prefix(self, x: torch.Tensor, depth: int) -> QuantizerOutput:
        """The library runs every layer; the first `depth` ids are the prefix (a layer's id depends
        only on the layers before it), and `quantized` is their decoding."""
        if self.training and torch.is_grad_enabled():
            # The decoding of a prefix carries no gradient to the encoder; the library trains prefixes
            # through its quantize dropout (quantizer_dropout > 0) instead.
            raise ValueError(
                f"{self.kind!r} keeps a prefix of its codebooks only when encoding (eval mode or torch.no_grad); "
                "train every prefix with quantizer_dropout > 0"
            )
        out = self._quantize(x)
        ids = out.ids[:, :depth]
        return QuantizerOutput(self._decode(ids).to(x.dtype), ids, out.loss, out.losses)

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        given = ids.shape[-1]
        padded = torch.nn.functional.pad(ids, (0, self.num_codebooks - given))
        codes = self.residual.get_codes_from_indices(padded[None])[:, 0]  # (depth, N, d)
        summed = codes[:given].sum(dim=0)
        project_out = getattr(self.residual, "project_out", torch.nn.Identity())
        return project_out(summed)


class ResidualFSQQuantizer(_LibraryResidual):
    kind = "rfsq"

    def __init__(self, dim: int, levels=(8, 5, 5, 5), num_codebooks: int = 4, quantizer_dropout: float = 0.0):
        levels = check_fsq_levels(levels)
        if math.prod(levels) > LIBRARY_FSQ_MAX_CODES:
            raise ValueError(
                f"rfsq supports up to {LIBRARY_FSQ_MAX_CODES} codes per layer, levels {levels} give {math.prod(levels)}"
            )
        from vector_quantize_pytorch import ResidualFSQ

        layer = ResidualFSQ(
            levels=levels, num_quantizers=num_codebooks, dim=dim, quantize_dropout=quantizer_dropout > 0
        )
        super().__init__(layer, dim, num_codebooks, math.prod(levels))
        self.levels = levels


class _LibrarySingleCodebook(Quantizer):
    """Shared conversion for the library's single-codebook kinds whose forward returns
    (quantized, ids, loss). Eval output is rebuilt from the ids (the library's straight-through or
    rotation arithmetic is not exactly the code), so decode_ids reproduces it bit for bit."""

    def __init__(self, layer: torch.nn.Module, dim: int, codebook_size: int):
        super().__init__()
        self.layer, self.dim, self.num_codebooks, self._codebook_size = layer, dim, 1, codebook_size

    def _codes(self, ids: torch.Tensor) -> torch.Tensor:
        """ids (1, N) -> code vectors (1, N, dim)."""
        raise NotImplementedError

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        quantized, ids, loss = self.layer(x[None])
        if not self.training:
            quantized = self._codes(ids)
        loss = loss.sum()
        return QuantizerOutput(quantized[0], ids[0, :, None].long(), loss, {"commitment": loss})

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self._codes(ids[None, :, 0])[0]


class SimVQQuantizer(_LibrarySingleCodebook):
    """SimVQ (Zhu et al. 2024): a frozen random codebook re-parameterised by a learned linear map."""

    kind = "simvq"

    def __init__(self, dim: int, codebook_size: int = 1024, rotation_trick: bool = True):
        from vector_quantize_pytorch import SimVQ

        super().__init__(SimVQ(dim=dim, codebook_size=codebook_size, rotation_trick=rotation_trick), dim, codebook_size)

    def _codes(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layer.indices_to_codes(ids)


class ResidualSimVQQuantizer(_LibraryResidual):
    kind = "rsimvq"

    def __init__(self, dim: int, codebook_size: int = 1024, num_codebooks: int = 4, quantizer_dropout: float = 0.0):
        from vector_quantize_pytorch import ResidualSimVQ

        layer = ResidualSimVQ(
            dim=dim, num_quantizers=num_codebooks, codebook_size=codebook_size, quantize_dropout=quantizer_dropout > 0
        )
        super().__init__(layer, dim, num_codebooks, codebook_size)


class ReferenceVectorQuantizer(_LibrarySingleCodebook):
    """vector-quantize-pytorch's VectorQuantize, kept as `vq-reference` for comparisons."""

    kind = "vq-reference"

    def __init__(
        self,
        dim: int,
        codebook_size: int = 1024,
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        kmeans_init: bool = False,
    ):
        from vector_quantize_pytorch import VectorQuantize

        layer = VectorQuantize(
            dim=dim,
            codebook_size=codebook_size,
            decay=decay,
            commitment_weight=commitment_weight,
            kmeans_init=kmeans_init,
            sync_codebook=distributed.is_distributed(),
        )
        super().__init__(layer, dim, codebook_size)

    def _codes(self, ids: torch.Tensor) -> torch.Tensor:
        return self.layer.get_output_from_indices(ids)
