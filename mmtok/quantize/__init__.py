"""One quantizer contract over every kind: `build_quantizer(kind, **cfg)(z) -> QuantizerOutput`."""

from mmtok.quantize.base import Quantizer, QuantizerOutput
from mmtok.quantize.registry import KINDS, build_quantizer
from mmtok.quantize.search import nearest_code

__all__ = ["KINDS", "Quantizer", "QuantizerOutput", "build_quantizer", "nearest_code"]
