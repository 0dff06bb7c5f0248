"""Degradations: pure codecs and their specs (JPEG, double JPEG, BPG, HEVC-intra)."""

from carbench.degradations.base import Degradation, DegradedImage
from carbench.degradations.double_jpeg import DoubleJpeg
from carbench.degradations.hevc import Bpg, CodecNotFoundError, Hevc, bpgenc_available
from carbench.degradations.jpeg import (
    Jpeg,
    decode_jpeg,
    encode_jpeg,
    ijg_quant_tables,
    read_quant_tables,
)
from carbench.degradations.registry import KINDS, expand, expand_all, from_id, with_bpg_fallback

__all__ = [
    "KINDS",
    "Bpg",
    "CodecNotFoundError",
    "Degradation",
    "DegradedImage",
    "DoubleJpeg",
    "Hevc",
    "Jpeg",
    "bpgenc_available",
    "decode_jpeg",
    "encode_jpeg",
    "expand",
    "expand_all",
    "from_id",
    "ijg_quant_tables",
    "read_quant_tables",
    "with_bpg_fallback",
]
