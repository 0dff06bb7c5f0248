"""``jpeg``: the decoded degraded input itself - the "JPEG" row of every table."""

from __future__ import annotations

import numpy as np

from carbench.methods.base import Method, Sample


class DecodedInput(Method):
    name = "jpeg"
    label = "JPEG"
    description = "No restoration: the decoded JPEG (or BPG/HEVC) input, libjpeg-turbo defaults"
    saves_outputs = False  # the output is the decode of a stored bitstream
    uses_torch = False

    def restore(self, sample: Sample) -> np.ndarray:
        return sample.decoded
