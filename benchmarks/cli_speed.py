"""The command line's own cost, start-up included, each against a named baseline in one run.

1. ``bench --version`` and ``bench --help`` against ``python -c pass`` (the interpreter alone).
2. A no-op re-run of a finished ``bench run`` (LIVE1, the ``codiff-main`` suite's degradations,
   method ``jpeg``, PSNR/SSIM/PSNR-B) against the first, working run. Goal: under 1 s.
   With ``--dncnn3 DIR`` (a folder holding ``dncnn3/DnCNN3.mat``) also ``jpeg,dncnn3`` on the
   sample set, against ``python -c "import pandas, pyarrow.parquet"`` (what reading the store
   costs at the least): a finished run of a torch method must not import torch. Goal: < 1 s.
3. ``bench generate`` on Urban100 at 10 QFs (5-90), 1 worker, against a plain OpenCV loop run
   the same way (a fresh process): it decodes each source PNG once and writes a JPEG per QF.
   Both write the same bytes (checked). Goal: at least 1.0x the loop's speed.

Every figure is the best of ``--repeat`` runs (3 and 4.: interleaved, so that both meet the
same disk write-back state); the machine's load is printed beside them. ``--tmp /dev/shm``
puts the workspaces in memory, leaving the CPU work alone.

    python benchmarks/cli_speed.py --data-root ../shared/data [--repeat 3] [--tmp DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

QFS = (5, 10, 20, 30, 40, 50, 60, 70, 80, 90)

LOOP = """
import sys
from pathlib import Path
import cv2
src, out = Path(sys.argv[1]), Path(sys.argv[2])
qfs = [int(q) for q in sys.argv[3].split(",")]
for q in qfs:
    (out / f"q{q}").mkdir(parents=True, exist_ok=True)
for p in sorted(src.glob("*.png")):
    img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
    for q in qfs:
        ok, buf = cv2.imencode(".jpg", img, [cv2.IMWRITE_JPEG_QUALITY, q])
        (out / f"q{q}" / f"{p.stem}.jpg").write_bytes(buf.tobytes())
"""


def best_of(cmd: list[str], repeat: int, fresh: Path | None = None, env=None) -> float:
    """Best wall time of ``cmd``; ``fresh`` is emptied before each run."""
    best = float("inf")
    for _ in range(repeat):
        if fresh is not None:
            subprocess.run(["rm", "-rf", str(fresh)], check=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, env=env)
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", type=Path, default=os.environ.get("BENCH_DATA_ROOT"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--dncnn3", type=Path, default=None, help="weights dir with dncnn3/")
    ap.add_argument(
        "--tmp", default=None, help="folder for the workspaces (e.g. /dev/shm: no disk I/O)"
    )
    args = ap.parse_args()
    if args.data_root is None:
        sys.exit("give --data-root (the folder holding LIVE1/ and Urban100/)")
    py, bench = sys.executable, [sys.executable, "-m", "carbench.cli"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print(f"load average before: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")

    interp = best_of([py, "-c", "pass"], args.repeat * 2)
    version = best_of([*bench, "--version"], args.repeat * 2)
    helptext = best_of([*bench, "--help"], args.repeat * 2)
    print(f"python -c pass          {interp:7.3f} s (baseline)")
    print(f"bench --version         {version:7.3f} s  ({version / interp:.2f}x the interpreter)")
    print(f"bench --help            {helptext:7.3f} s  ({helptext / interp:.2f}x the interpreter)")

    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        ws = Path(tmp) / "ws"
        run = [
            *bench,
            "run",
            "-w",
            str(ws),
            "--suite",
            "codiff-main",
            "--dataset",
            "LIVE1",
            "--data-root",
            str(args.data_root),
            "--methods",
            "jpeg",
            "--no-progress",
        ]
        t = time.perf_counter()
        subprocess.run(run, check=True, stdout=subprocess.DEVNULL, env=env)
        first = time.perf_counter() - t
        rerun = best_of(run, args.repeat, env=env)
        print(f"bench run, first        {first:7.3f} s (LIVE1 x codiff-main, jpeg)")
        print(f"bench run, re-run       {rerun:7.3f} s  (goal < 1 s; {first / rerun:.0f}x faster)")
        if args.dncnn3 is not None:
            denv = {**env, "BENCH_WEIGHTS_DIR": str(args.dncnn3)}
            drun = [*bench, "run", "-w", str(Path(tmp) / "dws"), "--methods", "jpeg,dncnn3"]
            drun.append("--no-progress")
            t = time.perf_counter()
            subprocess.run(drun, check=True, stdout=subprocess.DEVNULL, env=denv)
            dfirst = time.perf_counter() - t
            store_floor = best_of([py, "-c", "import pandas, pyarrow.parquet"], args.repeat)
            drerun = best_of(drun, args.repeat, env=denv)
            print(f"import pandas+pyarrow   {store_floor:7.3f} s (baseline: reading a store)")
            print(f"jpeg,dncnn3 first       {dfirst:7.3f} s (sample, QF 5/10/20)")
            print(
                f"jpeg,dncnn3 re-run      {drerun:7.3f} s  (goal < 1 s; "
                f"{drerun / store_floor:.2f}x the baseline)"
            )

        src = args.data_root / "Urban100"
        out = Path(tmp) / "loop"
        gws = Path(tmp) / "gen"
        spec = "jpeg:q=" + ",".join(map(str, QFS))
        loop_cmd = [py, "-c", LOOP, str(src), str(out), ",".join(map(str, QFS))]
        gen_cmd = [
            *bench,
            "generate",
            "-w",
            str(gws),
            "--dataset",
            "Urban100",
            "--data-root",
            str(args.data_root),
            "--protocol",
            "fbcnn",
            "--degradation",
            spec,
            "--jobs",
            "1",
            "--no-progress",
        ]
        # interleaved, so that both meet the same disk write-back state
        loop = gen = float("inf")
        for _ in range(args.repeat):
            loop = min(loop, best_of(loop_cmd, 1, fresh=out, env=env))
            gen = min(gen, best_of(gen_cmd, 1, fresh=gws, env=env))
        for q in (5, 90):
            a = sorted((out / f"q{q}").glob("*.jpg"))
            b = gws / "sets" / "Urban100" / "fbcnn" / f"jpeg-q{q}"
            same = all(p.read_bytes() == (b / p.name).read_bytes() for p in a)
            print(f"  same bytes at QF {q}: {same} ({len(a)} files)")
        print(f"OpenCV loop (baseline)  {loop:7.3f} s (Urban100, 10 QFs, decode once)")
        print(f"bench generate          {gen:7.3f} s  ({loop / gen:.2f}x the loop; goal >= 1.0x)")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
