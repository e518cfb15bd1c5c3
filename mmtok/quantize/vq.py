"""mmtok's own VQ codebook, built on the bounded-memory nearest-code search.

One codebook (kind `vq`; each layer of `rvq`): l2 or cosine codes, optional low-dimensional
factorised codes behind linear projections (as in ViT-VQGAN and DAC), EMA or learned codes,
k-means++-style initialisation, dead-code revival and the rotation trick. Everything that changes
the codebook is reduced across processes in `mmtok.distributed`, so every process holds the same
codebook after every step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mmtok import distributed
from mmtok.quantize.base import Quantizer, QuantizerOutput, zero_loss
from mmtok.quantize.search import METRICS, nearest_code

UPDATES = ("ema", "learned")


class VectorQuantizer(Quantizer):
    kind = "vq"

    def __init__(
        self,
        dim: int,
        codebook_size: int,
        *,
        codebook_dim: int | None = None,
        metric: str = "l2",
        update: str = "ema",
        decay: float = 0.99,
        commitment_weight: float = 0.25,
        codebook_weight: float = 1.0,
        kmeans_init: bool = True,
        kmeans_iters: int = 10,
        dead_code_threshold: float = 0.1,
        rotation_trick: bool = True,
        eps: float = 1e-5,
    ):
        super().__init__()
        if codebook_size < 1:
            raise ValueError(f"codebook_size must be >= 1, got {codebook_size}")
        if metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
        if update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, got {update!r}")
        if not 0.0 < decay < 1.0:
            raise ValueError(f"decay must be in (0, 1), got {decay}")
        self.dim, self.num_codebooks, self._codebook_size = dim, 1, codebook_size
        self.codebook_dim = codebook_dim or dim
        self.metric, self.update, self.decay, self.eps = metric, update, decay, eps
        self.commitment_weight, self.codebook_weight = commitment_weight, codebook_weight
        self.kmeans_iters, self.dead_code_threshold = kmeans_iters, dead_code_threshold
        self.rotation_trick = rotation_trick

        factorised = self.codebook_dim != dim
        self.project_in = nn.Linear(dim, self.codebook_dim) if factorised else nn.Identity()
        self.project_out = nn.Linear(self.codebook_dim, dim) if factorised else nn.Identity()

        codes = self._normalise(torch.randn(codebook_size, self.codebook_dim))
        if update == "learned":
            self.codebook = nn.Parameter(codes)
        else:
            self.register_buffer("codebook", codes)
            self.register_buffer("embed_sum", codes.clone())
        # Usage counts (EMA) drive dead-code revival for both update rules.
        self.register_buffer("cluster_size", torch.ones(codebook_size))
        self.register_buffer("initialised", torch.tensor(not kmeans_init))

    def _normalise(self, t: torch.Tensor) -> torch.Tensor:
        return F.normalize(t, dim=-1) if self.metric == "cosine" else t

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        z = self._normalise(self.project_in(x).float())
        if self.training and not bool(self.initialised):
            self._kmeans_init(z.detach())
        ids, _ = nearest_code(z.detach(), self.codebook.detach(), metric=self.metric)
        codes = F.embedding(ids, self.codebook)

        if not self.training:
            quantized = self.project_out(codes.detach()).to(x.dtype)
            return QuantizerOutput(quantized, ids[:, None], zero_loss(x), {})

        commitment = F.mse_loss(z, codes.detach())
        losses = {"commitment": commitment}
        loss = self.commitment_weight * commitment
        if self.update == "learned":
            losses["codebook"] = F.mse_loss(z.detach(), codes)
            loss = loss + self.codebook_weight * losses["codebook"]
        straight_through = _rotate_to(z, codes) if self.rotation_trick else z + (codes - z).detach()
        quantized = self.project_out(straight_through).to(x.dtype)

        with torch.no_grad():
            self._update_codebook(z.detach(), ids)
        return QuantizerOutput(quantized, ids[:, None], loss, losses)

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        return self.project_out(F.embedding(ids[:, 0], self.codebook.detach()))

    # -- codebook maintenance (no gradients; every statistic is reduced across processes) --------
    @torch.no_grad()
    def _update_codebook(self, z: torch.Tensor, ids: torch.Tensor) -> None:
        counts = torch.bincount(ids, minlength=self.codebook_size).float()
        distributed.all_reduce_sum(counts)
        self.cluster_size.mul_(self.decay).add_(counts, alpha=1 - self.decay)
        if self.update == "ema":
            sums = torch.zeros_like(self.embed_sum).index_add_(0, ids, z)
            distributed.all_reduce_sum(sums)
            self.embed_sum.mul_(self.decay).add_(sums, alpha=1 - self.decay)
            # Laplace smoothing keeps rarely used codes from dividing by ~0.
            total = self.cluster_size.sum()
            smoothed = (self.cluster_size + self.eps) / (total + self.codebook_size * self.eps) * total
            self.codebook.copy_(self._normalise(self.embed_sum / smoothed[:, None]))
        if self.dead_code_threshold > 0:
            self._revive_dead_codes(z)

    @torch.no_grad()
    def _revive_dead_codes(self, z: torch.Tensor) -> None:
        """Codes whose EMA usage fell under `dead_code_threshold` x the uniform share (tokens per
        step / codebook size) take a recent encoder output. Relative to the share, so one default
        suits 1k and 256k codes, small and large batches."""
        share = self.cluster_size.sum() / self.codebook_size
        dead = self.cluster_size < self.dead_code_threshold * share  # identical on every process
        num_dead = int(dead.sum())
        if num_dead == 0:
            return
        pool = distributed.all_gather_rows(z)
        picks = torch.randint(0, pool.shape[0], (num_dead,), device=pool.device)
        codebook = self.codebook.data.clone()
        codebook[dead] = self._normalise(pool[picks])
        # One process chooses the replacements; the others take them, so codebooks stay identical.
        distributed.broadcast(codebook)
        self.codebook.data.copy_(codebook)
        self.cluster_size[dead] = share  # a fresh code starts at the average use, not dead again at once
        if self.update == "ema":
            self.embed_sum[dead] = codebook[dead] * share

    @torch.no_grad()
    def _kmeans_init(self, z: torch.Tensor) -> None:
        pool = distributed.all_gather_rows(z)
        codebook = kmeans(pool, self.codebook_size, iters=self.kmeans_iters, metric=self.metric)
        distributed.broadcast(codebook)
        self.codebook.data.copy_(self._normalise(codebook))
        self.cluster_size.fill_(1.0)
        if self.update == "ema":
            self.embed_sum.copy_(self.codebook.data)
        self.initialised.fill_(True)


def kmeans(samples: torch.Tensor, num_clusters: int, *, iters: int = 10, metric: str = "l2") -> torch.Tensor:
    """k-means++-style seeding followed by Lloyd iterations, in O(N + K) extra memory.

    Seeding picks centres in rounds (k-means|| style): each round draws a batch of new centres with
    probability proportional to the squared distance to the nearest existing centre. With one
    centre per round this is exactly k-means++; rounds keep large K tractable.
    """
    samples = samples.float()
    n = samples.shape[0]
    if n < num_clusters:
        # Too few samples for distinct centres: reuse samples, jittered so they can separate.
        extra = samples[torch.randint(0, n, (num_clusters - n,), device=samples.device)]
        return torch.cat([samples, extra + 1e-3 * torch.randn_like(extra)])

    rounds = min(num_clusters, 16)
    centres = samples[torch.randint(0, n, (1,), device=samples.device)]
    _, best = nearest_code(samples, centres, metric=metric)
    while centres.shape[0] < num_clusters:
        take = min(max(1, num_clusters // rounds), num_clusters - centres.shape[0])
        weights = best.clamp_min(0) + 1e-12
        new = samples[torch.multinomial(weights, take, replacement=False)]
        centres = torch.cat([centres, new])
        _, dist_new = nearest_code(samples, new, metric=metric)
        best = torch.minimum(best, dist_new)

    for _ in range(iters):
        ids, _ = nearest_code(samples, centres, metric=metric)
        counts = torch.bincount(ids, minlength=num_clusters).float()
        sums = torch.zeros_like(centres).index_add_(0, ids, samples)
        used = counts > 0
        centres[used] = sums[used] / counts[used, None]
        if metric == "cosine":
            centres = F.normalize(centres, dim=-1)
    return centres


def _rotate_to(z: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
    """The rotation trick (Fifty et al., 2024): forward value is `codes`, and the gradient reaching
    `z` is rotated and scaled by the same map that takes z to its code, instead of copied."""
    eps = 1e-6
    z_norm = z.norm(dim=-1, keepdim=True).clamp_min(eps)
    c_norm = codes.norm(dim=-1, keepdim=True).clamp_min(eps)
    z_unit = (z / z_norm).detach()
    c_unit = (codes / c_norm).detach()
    mirror = F.normalize(z_unit + c_unit, dim=-1, eps=eps).detach()
    rotated = z - 2 * (z * mirror).sum(-1, keepdim=True) * mirror + 2 * (z * z_unit).sum(-1, keepdim=True) * c_unit
    return rotated * (c_norm / z_norm).detach()
