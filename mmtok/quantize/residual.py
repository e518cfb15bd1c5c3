"""Composite kinds: residual stacks of mmtok codebooks (`rvq`) and feature groups (`groups=`)."""

from __future__ import annotations

import torch
from torch import nn

from mmtok.quantize.base import Quantizer, QuantizerOutput, zero_loss


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
        depth = self.checked_num_codebooks(num_codebooks)
        rows_per_example = z[..., 0].numel() // z.shape[0] if z.ndim >= 2 and z.shape[0] else 1
        return self._apply_flat(
            z, lambda flat: self._quantize_to_depth(flat, self._depth_per_row(flat, depth, rows_per_example), depth)
        )

    def _quantize(self, x: torch.Tensor) -> QuantizerOutput:
        return self._quantize_prefix(x, self.num_codebooks)

    def _quantize_prefix(self, x: torch.Tensor, depth: int) -> QuantizerOutput:
        return self._quantize_to_depth(x, torch.full((x.shape[0],), depth, device=x.device), depth)

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

    Ids are laid out depth-major, `ids[..., depth * groups + group]`, so for residual inner kinds
    the first n columns are the ids of a coarser encoding (`num_codebooks=n`), whole depths or not.
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
        return self._quantize_prefix(x, self.num_codebooks)

    def _quantize_prefix(self, x: torch.Tensor, columns: int) -> QuantizerOutput:
        """The first `columns` ids of the depth-major layout: group g keeps the depths whose column
        d * groups + g is among them; a group left with none contributes zeros (an empty residual sum)."""
        count = len(self.groups)
        quantized, ids, loss, losses = [], [], zero_loss(x), {}
        for g, (group, part) in enumerate(zip(self.groups, x.split(self.group_dim, dim=-1))):
            depth = len(range(g, columns, count))
            if depth == 0:
                quantized.append(torch.zeros_like(part))
                ids.append(torch.full((x.shape[0], self.depth), -1, dtype=torch.long, device=x.device))
                continue
            out = group._quantize(part) if depth == self.depth else group._quantize_prefix(part, depth)
            quantized.append(out.quantized)
            ids.append(torch.nn.functional.pad(out.ids, (0, self.depth - depth), value=-1))
            loss = loss + out.loss
            losses.update({f"{name}/group{g}": value for name, value in out.losses.items()})
        ids = torch.stack(ids, dim=-1).flatten(1)[:, :columns]  # (N, depth, groups) -> depth-major
        return QuantizerOutput(torch.cat(quantized, dim=-1), ids, loss, losses)

    def _decode(self, ids: torch.Tensor) -> torch.Tensor:
        count = len(self.groups)
        # Group g's ids are every count-th column from g; a prefix may leave the last groups none.
        decoded = [group._decode(ids[:, g::count]) for g, group in enumerate(self.groups) if g < ids.shape[1]]
        decoded += [torch.zeros_like(decoded[0])] * (count - len(decoded))
        return torch.cat(decoded, dim=-1)
