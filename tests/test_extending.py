"""Adding a codec and a metric touches one file each: here, both are defined in this file and
go through ``bench generate``, ``bench run`` and ``bench report`` like the built-in ones."""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import run_cli


def _mean_abs_error(test: np.ndarray, ref: np.ndarray | None) -> float:
    return float(np.mean(np.abs(test.astype(np.float64) - ref.astype(np.float64))))


@pytest.fixture
def toy_kinds():
    """A toy codec (value quantisation, stored as PNG) and a toy metric, removed afterwards."""
    from carbench.bench.metrics import registry
    from carbench.core.options import Option
    from carbench.degradations.base import KINDS, Degradation, DegradedImage, as_array

    @dataclass(frozen=True)
    class Quantise(Degradation):
        """Pixel values floored to multiples of ``step`` (id ``quant-s16``)."""

        step: int

        kind: ClassVar[str] = "quant"
        bitstream_ext: ClassVar[str] = ".png"
        spec_options: ClassVar[tuple[Option, ...]] = (
            Option("step", "int", min=1, max=255, required=True, help="quantisation step"),
        )
        id_pattern: ClassVar[str] = r"quant-s(\d+)"

        @property
        def id(self) -> str:
            return f"quant-s{self.step}"

        @classmethod
        def from_match(cls, m: re.Match[str]) -> Quantise:
            return cls(int(m[1]))

        @classmethod
        def from_spec(cls, p):
            return [cls(s) for s in p["step"]]  # checked against spec_options

        @property
        def label(self) -> str:
            return f"Quant/{self.step}"

        def apply(self, gt) -> DegradedImage:
            q = (as_array(gt) // self.step * self.step).astype(np.uint8)
            buf = io.BytesIO()
            Image.fromarray(q).save(buf, format="PNG")
            return DegradedImage(buf.getvalue(), gt, decoder=self.decode)

        def decode(self, bitstream: bytes) -> np.ndarray:
            return np.asarray(Image.open(io.BytesIO(bitstream)))

        def params(self) -> dict:
            return {"step": self.step}

        def encoder(self) -> str:
            return "toy"

    spec = registry.register(
        registry.MetricSpec(
            name="mae",
            variant="rgb",
            default=True,
            in_all=False,
            kind="FR",
            higher_better=False,
            decimals=3,
            label="MAE",
            description="mean absolute error over RGB",
            score=_mean_abs_error,
        )
    )
    yield Quantise
    registry.METRICS.remove(spec)
    del KINDS["quant"]


def test_a_toy_codec_and_metric_run_through_the_pipeline(toy_kinds, ws, tmp_path):
    assert run_cli("generate", "-w", ws, "--degradation", "quant:step=16,64") == 0
    gt_dir = ws / "sets" / "sample" / "codiff" / "gt"
    for step in (16, 64):
        png = ws / "sets" / "sample" / "codiff" / f"quant-s{step}" / "chelsea.png"
        gt = np.asarray(Image.open(gt_dir / "chelsea.png"))
        assert np.array_equal(np.asarray(Image.open(png)), gt // step * step)

    args = (
        "run",
        "-w",
        ws,
        "--degradation",
        "quant:step=16,64",
        "--metrics",
        "psnr,mae",
        "--no-progress",
    )
    assert run_cli(*args) == 0
    rows = pd.concat(pd.read_parquet(p) for p in (ws / "results").glob("*.parquet"))
    rows = rows.set_index(["degradation", "image", "metric"]).value
    for step in (16, 64):
        gt = np.asarray(Image.open(gt_dir / "chelsea.png")).astype(np.float64)
        err = gt - gt // step * step  # by hand: the floor's remainder
        mse = np.mean(err**2)
        psnr = 10 * np.log10(255.0**2 / mse)
        assert rows[(f"quant-s{step}", "chelsea", "mae")] == pytest.approx(np.mean(err), abs=1e-9)
        assert rows[(f"quant-s{step}", "chelsea", "psnr")] == pytest.approx(psnr, abs=1e-9)

    out = tmp_path / "t.md"
    assert run_cli("report", "-w", ws, "--format", "markdown", "--out", out) == 0
    text = out.read_text()
    assert "Quant/16" in text and "Quant/64" in text and "MAE" in text
    # the row's decimals (3) format the cell: the mean over the two images
    mae = rows.xs("mae", level="metric").groupby(level="degradation").mean()
    for deg in ("quant-s16", "quant-s64"):
        assert re.search(re.escape(f"{mae[deg]:.3f}") + r"(?![0-9])", text), (deg, text)


def test_the_toy_codec_grammar(toy_kinds):
    from carbench.degradations import expand, from_id

    assert [d.id for d in expand("quant:step=8,32")] == ["quant-s8", "quant-s32"]
    assert from_id("quant-s8") == toy_kinds(8)
    with pytest.raises(ValueError, match="unknown option `q` for quant"):
        expand("quant:q=3")
