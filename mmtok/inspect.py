"""`mmtok inspect DIR`: what an exported tokenizer is, what its ids cost, and how it scored."""

from __future__ import annotations

import json
import math

from mmtok.artifact import load_tokenizer
from mmtok.quantize.base import bits_per_position


def describe_artifact(path) -> str:
    frozen = load_tokenizer(path)
    config, vocab = frozen.config, frozen.vocab
    bits = bits_per_position(vocab.num_codebooks, vocab.codebook_sizes)
    lines = [
        f"mmtok {config['family']} tokenizer ({config['modality']}), mmtok {config.get('mmtok_version', 'unknown')}",
        f"path: {frozen.path}",
        f"weights sha256: {config.get('weights_sha256', 'not recorded')}",
        f"vocab sha256: {config.get('vocab_sha256', 'not recorded (exported before mmtok checksummed vocab.json)')}",
        "",
        "model config:",
        json.dumps(config["model"], indent=2),
        f"input: {json.dumps(frozen.input_spec.to_json())}",
        "",
        "vocab layout:",
        f"  codebooks: {vocab.num_codebooks}, sizes {vocab.codebook_sizes} ({bits:.2f} bits per position)",
        f"  ids {vocab.base_offset}..{vocab.end_offset - 1} ({vocab.size} ids), "
        f"offsets {vocab.offsets} ({vocab.codebook_offsets})",
        f"  flatten: {vocab.flatten}, row markers: {vocab.row_markers}, token shape: {vocab.token_shape}",
        f"  special tokens: {vocab.special_tokens}",
    ]
    examples = frozen.rate_examples()
    if examples:
        lines += ["", f"{'input':<12} {'token shape':<14} {'ids':>8} {'LLM ids':>8} {'bits':>10} {'rate':>14}"]
        for label, shape, amount, unit in examples:
            token_shape = frozen.token_shape_for(shape)
            positions = math.prod(token_shape)
            ids = positions * vocab.num_codebooks
            llm_ids = ids + len(vocab.special_tokens) + (token_shape[0] if vocab.row_markers else 0)
            total_bits = positions * bits
            lines.append(
                f"{label:<12} {str(tuple(token_shape)):<14} {ids:>8} {llm_ids:>8} {total_bits:>10.0f} "
                f"{total_bits / amount:>9.4f} b/{unit}"
            )
    card = config.get("card", {})
    if card:
        lines += ["", "model card:"] + [f"  {k}: {v}" for k, v in card.items() if k != "eval"]
        for name, value in card.get("eval", {}).items():
            lines.append(f"  eval {name}: {value:.4g}" if isinstance(value, float) else f"  eval {name}: {value}")
    return "\n".join(lines)
