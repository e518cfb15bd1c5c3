"""Composite kinds: residual stacks of mmtok codebooks (`rvq`) and feature groups (`groups=`)."""

from __future__ import annotations

import torch
from torch import nn

from mmtok.quantize.base import Quantizer, QuantizerOutput


class ResidualQuantizer(Quantizer):
    """Each layer quantises what the previous ones left. The ids of the first n layers depend only
    on those layers, so a prefix of the ids is a coarser encoding of the same input.

    `quantizer_dropout` is the fraction of examples that, in training, keep only a random number
    of layers (as in SoundStream/DAC), so every prefix is trained to decode. Dropped layers get
    id -1 in training output; eval output always has every layer.
    """

    kind = "rvq"
    accepts_codebook_prefix = True

    def __init__(self, layers: list[Quantizer], quantizer_dropout: float = 0.0):
        super().__init__()
        if not layers:
            raise ValueError("a residual quantizer needs at least one layer")
        if not 0.0 <= quantizer_dropout <= 1.0:
            raise ValueError(f"quantizer_dropout must be in [0, 1], got {quantizer_dropout}")
        self.layers = nn.ModuleList(layers)
        self.dim, self.num_codebooks = layers[0].dim, len(layers)
        self.quantizer_dropout = quantizer_dropout

    @property
    def codebook_size(self) -> int | list[int]:
        sizes = [layer.codebook_size for layer in self.layers]
        return sizes[0] if len(set(sizes)) == 1 else sizes

    def forward(self, z: torch.Tensor, num_codebooks: int | None = None) -> QuantizerOutput:
        """`num_codebooks=n` runs only the first n layers (the ids are the full encoding's prefix)."""
        depth = self.num_codebooks if num_codebooks is None else int(num_codebooks)
        if not 1 <= depth <= self.num_codebooks:
            raise ValueError(f"num_codebooks must be in [1, {self.num_codebooks}], got {num_codebooks}")
        rows_per_example = z[..., 0].numel() // z.shape[0] if z.ndim >= 2 and z.shape[0] else 1
        return self._apply_flat(
            z, lambda flat: self._quantize_to_depth(flat, self._depth_per_row(flat, depth, rows_per_example), depth)
        )

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        full = self.num_codebooks
        return self._quantize_to_depth(x, torch.full((x.shape[0],), full, device=x.device), full)

    def _quantize_to_depth(self, x: torch.Tensor, depth: torch.Tensor, columns: int) -> QuantizerOutput:
        """depth: (N,) number of layers each row keeps (dropped layers get id -1); ids have `columns` columns."""
        residual, quantized = x, torch.zeros_like(x)
        ids, loss, losses = [], x.new_zeros((), dtype=torch.float32), {}
        for index, layer in enumerate(self.layers[:columns]):
            active = depth > index
            layer_ids = torch.full((x.shape[0], 1), -1, dtype=torch.long, device=x.device)
            if active.all():
                out = layer._quantize(residual)
                layer_out, layer_ids = out.quantized.to(x.dtype), out.ids
            elif active.any():
                # Only the rows that keep this layer reach it, so dropped rows never touch its codebook.
                out = layer._quantize(residual[active])
                layer_out = torch.zeros_like(x).index_put((active,), out.quantized.to(x.dtype))
                layer_ids[active] = out.ids
            if active.any():
                quantized = quantized + layer_out
                residual = residual - layer_out.detach()
                loss = loss + out.loss
                for name, value in out.losses.items():
                    losses[f"{name}/{index}"] = value
            ids.append(layer_ids)
        return QuantizerOutput(quantized, torch.cat(ids, dim=1), loss, losses)

    def _depth_per_row(self, x: torch.Tensor, depth: int, rows_per_example: int) -> torch.Tensor:
        if not (self.training and self.quantizer_dropout > 0):
            return torch.full((x.shape[0],), depth, device=x.device)
        # One draw per example (rows of one example share its depth), as in SoundStream/DAC.
        examples = max(1, x.shape[0] // max(1, rows_per_example))
        dropped = torch.rand(examples, device=x.device) < self.quantizer_dropout
        random_depth = torch.randint(1, depth + 1, (examples,), device=x.device)
        per_example = torch.where(dropped, random_depth, torch.full_like(random_depth, depth))
        return per_example.repeat_interleave(max(1, rows_per_example))[: x.shape[0]]

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        decoded = 0
        for index in range(ids.shape[1]):
            decoded = decoded + self.layers[index]._decode(ids[:, index : index + 1])
        return decoded


class GroupedQuantizer(Quantizer):
    """Splits the feature dim into `groups` equal parts, each with its own quantizer.

    Ids are laid out depth-major, `ids[..., depth * groups + group]`, so a prefix of whole depths
    is still a prefix for residual inner kinds.
    """

    def __init__(self, groups: list[Quantizer]):
        super().__init__()
        if len(groups) < 2:
            raise ValueError("a grouped quantizer needs at least two groups")
        self.groups = nn.ModuleList(groups)
        self.group_dim = groups[0].dim
        self.dim = self.group_dim * len(groups)
        self.depth = groups[0].num_codebooks
        self.num_codebooks = self.depth * len(groups)
        self.kind = f"{groups[0].kind}(groups={len(groups)})"
        self.accepts_codebook_prefix = groups[0].accepts_codebook_prefix

    @property
    def codebook_size(self) -> int | list[int]:
        per_group = [g.codebook_sizes for g in self.groups]
        sizes = [per_group[g][d] for d in range(self.depth) for g in range(len(self.groups))]
        return sizes[0] if len(set(sizes)) == 1 else sizes

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        outs = [g._quantize(part) for g, part in zip(self.groups, x.split(self.group_dim, dim=-1))]
        ids = torch.stack([o.ids for o in outs], dim=-1).flatten(1)  # (N, depth, groups) -> depth-major
        losses = {f"{name}/group{g}": v for g, o in enumerate(outs) for name, v in o.losses.items()}
        loss = sum(o.loss for o in outs)
        return QuantizerOutput(torch.cat([o.quantized for o in outs], dim=-1), ids, loss, losses)

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        if ids.shape[1] % len(self.groups):
            raise ValueError(
                f"grouped ids must cover whole depths ({len(self.groups)} groups), got {ids.shape[1]} columns"
            )
        per_group = ids.unflatten(1, (-1, len(self.groups)))
        return torch.cat([g._decode(per_group[:, :, i]) for i, g in enumerate(self.groups)], dim=-1)
