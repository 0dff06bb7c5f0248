"""``bench qf``: the JPEG quality factor of files - read from the quantisation tables (exact for
IJG-family encoders) and, optionally, as predicted by a method's QF head (FBCNN, CODiff's
CaVE), side by side."""

from __future__ import annotations

from pathlib import Path

import typer

from carbench.core.errors import BenchError, ImageError


def _header_qf(path: Path) -> tuple[int | None, str]:
    from carbench.degradations.jpeg import qf_from_quant_tables, read_quant_tables

    data = path.read_bytes()
    if not data.startswith(b"\xff\xd8"):
        return None, "not a JPEG file"
    try:
        qf, exact = qf_from_quant_tables(read_quant_tables(data))
    except (OSError, ValueError) as e:
        raise ImageError(path, f"unreadable JPEG header ({e})") from None
    return qf, "IJG tables" if exact else "non-IJG tables, nearest IJG QF"


def qf_cmd(
    files: list[Path] = typer.Argument(..., help="JPEG files (or folders of them)"),
    method: str = typer.Option(
        "", "--method", "-m", help="also predict with this method's QF head: fbcnn or codiff"
    ),
    device: str = typer.Option("cpu", "--device"),
) -> None:
    """Print the quality factor of each file: from its header and (optionally) predicted."""
    from carbench import methods
    from carbench.core.imageio import list_images, read_image
    from carbench.methods.base import Sample

    paths = [p for f in files for p in (list_images(f) if f.is_dir() else [f])]
    if not paths:
        raise BenchError("no image files given")
    predictor = None
    if method:
        predictor = methods.get(method)
        if not hasattr(predictor, "predict_qf"):
            raise BenchError(f"method {method!r} has no QF head (use fbcnn or codiff)")
        predictor.load(device, "fp32")
    header = f"{'image':<28}{'header QF':>10}  {'source':<32}"
    typer.echo(header + (f"{'predicted':>10}" if predictor else ""))
    for p in paths:
        if not p.is_file():
            raise ImageError(p, "file not found")
        qf, how = _header_qf(p)
        line = f"{p.name:<28}{qf if qf is not None else '-':>10}  {how:<32}"
        if predictor is not None:
            import numpy as np

            sample = Sample(p.stem, np.asarray(read_image(p).image), p, "", {})
            line += f"{predictor.predict_qf(sample):>10}"
        typer.echo(line)
