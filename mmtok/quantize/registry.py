"""`build_quantizer(kind, **cfg)`: the one place that maps kind names to quantizer classes."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass

from mmtok.quantize.base import Quantizer
from mmtok.quantize.lfq import BinaryQuantizer
from mmtok.quantize.library import (
    FiniteScalarQuantizer,
    ReferenceVectorQuantizer,
    ResidualFSQQuantizer,
    ResidualSimVQQuantizer,
    SimVQQuantizer,
)
from mmtok.quantize.residual import GroupedQuantizer, ResidualQuantizer
from mmtok.quantize.vq import VectorQuantizer


@dataclass(frozen=True)
class KindInfo:
    build: Callable[..., Quantizer]
    codebook_size: str  # formula shown by `mmtok quantizers`
    summary: str
    source: str  # "mmtok" or "vector-quantize-pytorch"


def _build_rfsq(
    dim: int,
    levels=(8, 5, 5, 5),
    num_codebooks: int = 4,
    quantizer_dropout: float = 0.0,
    projection_per_codebook: bool = False,
    **usage,
) -> Quantizer:
    """The library's residual FSQ quantises one shared projection of the input (len(levels) numbers),
    so later codebooks only refine those numbers. `projection_per_codebook=True` stacks mmtok FSQ
    layers instead, each with its own projection in and out, so each codebook can code another
    direction of what is left (as DAC's factorised RVQ does), with mmtok's per-example dropout and
    FSQ's usage loss per codebook (`usage_weight`, `usage_over`, `usage_temperature`)."""
    if not projection_per_codebook:
        if usage:
            raise ValueError(f"rfsq takes {sorted(usage)} only with projection_per_codebook: true")
        return ResidualFSQQuantizer(dim, levels, num_codebooks, quantizer_dropout)
    layers = [FiniteScalarQuantizer(dim, levels, **usage) for _ in range(num_codebooks)]
    quantizer = ResidualQuantizer(layers, quantizer_dropout=quantizer_dropout)
    quantizer.kind = "rfsq"
    return quantizer


def _build_rvq(dim: int, codebook_size: int = 1024, num_codebooks: int = 8, quantizer_dropout: float = 0.0, **vq):
    layers = [VectorQuantizer(dim, codebook_size, **vq) for _ in range(num_codebooks)]
    return ResidualQuantizer(layers, quantizer_dropout=quantizer_dropout)


def _build_vq(dim: int, codebook_size: int = 1024, **vq):
    return VectorQuantizer(dim, codebook_size, **vq)


def _build_lfq(dim: int, codebook_size: int = 2**14, **options):
    return BinaryQuantizer(dim, codebook_size, spherical=False, **options)


def _build_bsq(dim: int, codebook_size: int = 2**14, **options):
    return BinaryQuantizer(dim, codebook_size, spherical=True, **options)


KINDS: dict[str, KindInfo] = {
    "vq": KindInfo(
        _build_vq, "codebook_size", "nearest-code VQ (EMA or learned, k-means init, revival, l2/cosine)", "mmtok"
    ),
    "rvq": KindInfo(
        _build_rvq, "codebook_size per codebook x num_codebooks", "residual stack of mmtok VQ codebooks", "mmtok"
    ),
    "fsq": KindInfo(FiniteScalarQuantizer, "prod(levels)", "finite scalar quantization", "vector-quantize-pytorch"),
    "rfsq": KindInfo(
        _build_rfsq, "prod(levels) per codebook x num_codebooks", "residual FSQ", "vector-quantize-pytorch"
    ),
    "lfq": KindInfo(
        _build_lfq, "2^bits (codebook_size, a power of two)", "lookup-free quantization, factorised entropy", "mmtok"
    ),
    "bsq": KindInfo(
        _build_bsq,
        "2^bits (codebook_size, a power of two)",
        "binary spherical quantization, factorised entropy",
        "mmtok",
    ),
    "simvq": KindInfo(
        SimVQQuantizer, "codebook_size", "frozen codebook with a learned linear map", "vector-quantize-pytorch"
    ),
    "rsimvq": KindInfo(
        ResidualSimVQQuantizer,
        "codebook_size per codebook x num_codebooks",
        "residual SimVQ",
        "vector-quantize-pytorch",
    ),
    "vq-reference": KindInfo(
        ReferenceVectorQuantizer,
        "codebook_size",
        "the library's VectorQuantize, for comparisons",
        "vector-quantize-pytorch",
    ),
}


def build_quantizer(kind: str, *, dim: int, groups: int = 1, **cfg) -> Quantizer:
    """Builds a quantizer of `kind` for channel-last inputs (..., dim).

    Shared argument names: dim, codebook_size, num_codebooks (residual depth), groups, levels (FSQ).
    With groups=g the feature dim is split in g parts, each quantised by its own `kind` quantizer.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown quantizer kind {kind!r}; expected one of {sorted(KINDS)}")
    if not isinstance(dim, int) or dim < 1:
        raise ValueError(f"dim must be a positive integer, got {dim!r}")
    if groups < 1 or dim % groups:
        raise ValueError(f"groups={groups} must be >= 1 and divide dim={dim}")
    build = KINDS[kind].build
    _check_arguments(kind, build, cfg)
    if groups == 1:
        return build(dim=dim, **cfg)
    return GroupedQuantizer([build(dim=dim // groups, **cfg) for _ in range(groups)])


def _check_arguments(kind: str, build: Callable, cfg: dict) -> None:
    params = inspect.signature(build).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values()):
        # The rvq/vq builders forward the rest to VectorQuantizer; lfq/bsq to BinaryQuantizer; rfsq
        # its usage options to FiniteScalarQuantizer.
        target = {"lfq": BinaryQuantizer, "bsq": BinaryQuantizer, "rfsq": FiniteScalarQuantizer}.get(
            kind, VectorQuantizer
        )
        params = {**params, **inspect.signature(target).parameters}
    allowed = {name for name, p in params.items() if p.kind is not inspect.Parameter.VAR_KEYWORD} - {
        "self",
        "dim",
        "spherical",
    }
    unknown = sorted(set(cfg) - allowed)
    if unknown:
        raise ValueError(f"unknown argument(s) {unknown} for quantizer kind {kind!r}; allowed: {sorted(allowed)}")
