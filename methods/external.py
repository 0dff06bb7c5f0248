"""``external``: outputs produced elsewhere, scored like any method.

``--methods external:NAME=DIR`` (long form ``external:name=NAME,dir=DIR``) matches files in
DIR to image ids (file stems). DIR may contain
``{degradation}`` or ``{qf}`` (also ``{qf1}``, ``{qf2}``, ``{qp}``) to point at one folder per
degradation, e.g. ``external:FBCNN=results/LIVE1_color_fbcnn_color/{qf}``. The store records
NAME as the method.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from carbench.core.errors import BenchError, ImageError
from carbench.core.imageio import IMAGE_EXTENSIONS, read_image
from carbench.core.options import Option
from carbench.methods.base import Method, Sample


class External(Method):
    name = "external"
    description = "Restored images made elsewhere (a folder per degradation), matched by image id"
    group = "external"
    saves_outputs = False
    uses_torch = False

    declared_options = (
        Option("name", "str", required=True, help="the method name the store and tables show"),
        Option(
            "dir",
            "path",
            required=True,
            in_id=False,
            help="folder of outputs (file stem = image id); may use {degradation}, {qf}, "
            "{qf1}, {qf2}, {qp}",
        ),
    )

    def __init__(self, **given: object) -> None:
        if len(given) == 1 and not set(given) & {"name", "dir"}:  # the short form NAME=DIR
            ((name, folder),) = given.items()
            given = {"name": name, "dir": folder}
        super().__init__(**given)
        self.label, self.template = self.opt("name"), self.opt("dir")

    @property
    def id(self) -> str:
        return self.label

    @classmethod
    def canonical_id_of(cls, given: dict[str, str]) -> str:
        raise BenchError("external rows are stored under their own name, not external:...")

    def folder_for(self, sample: Sample) -> Path:
        fields = {"degradation": sample.degradation, **sample.params}
        try:
            return Path(self.template.format(**fields))
        except KeyError as e:
            raise BenchError(
                f"external {self.label}: {self.template!r} uses {{{e.args[0]}}}, "
                f"which {sample.degradation} does not have"
            ) from None

    def output_source(self, sample: Sample) -> Path | None:
        folder = self.folder_for(sample)
        return next(
            (
                p
                for p in (folder / f"{sample.image}{ext}" for ext in IMAGE_EXTENSIONS)
                if p.is_file()
            ),
            None,
        )

    def restore(self, sample: Sample) -> np.ndarray:
        folder = self.folder_for(sample)
        if not folder.is_dir():
            raise ImageError(folder, f"folder of {self.label} outputs not found")
        hit = self.output_source(sample)
        if hit is None:
            raise ImageError(
                folder / f"{sample.image}.png", f"no {self.label} output for image {sample.image}"
            )
        out = read_image(hit).pixels
        if out.ndim != sample.decoded.ndim:
            have = 1 if out.ndim == 2 else out.shape[2]
            want = 1 if sample.decoded.ndim == 2 else 3
            raise ImageError(hit, f"has {have} channel(s); the degraded input has {want}")
        return out
