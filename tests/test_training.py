"""Training pairs: seeded per (seed, index) whatever the DataLoader workers, recipes as upstream
describes them, the test sets' encoders byte for byte, and resumable shards."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from carbench.degradations.jpeg import Jpeg, qf_from_quant_tables, read_quant_tables
from carbench.degradations.training import (
    FBCNN,
    GenericRecipe,
    PairDataset,
    augment,
    get_recipe,
    write_shards,
)

UPSTREAM = Path(__file__).parent / "data" / "upstream" / "fbcnn_recipes.npz"


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    d = tmp_path_factory.mktemp("imgs")
    Image.fromarray(data.astronaut()[:200, :240]).save(d / "a.png")
    Image.fromarray(data.chelsea()[:160, :200]).save(d / "b.png")
    Image.fromarray(data.coffee()[:180, :220]).save(d / "c.png")
    return d


def test_augment_modes_by_hand():
    a = np.arange(6).reshape(2, 3)
    assert np.array_equal(augment(a, 2), [[3, 4, 5], [0, 1, 2]])  # flipud
    assert np.array_equal(augment(a, 5), [[2, 5], [1, 4], [0, 3]])  # rot90 ccw
    assert np.array_equal(augment(a, 3), [[3, 0], [4, 1], [5, 2]])  # rot90 k=3
    assert len({augment(a, m).tobytes() + bytes(augment(a, m).shape) for m in range(8)}) == 8


def test_same_pair_for_same_seed_and_index(folder):
    ds = PairDataset(folder, "fbcnn", seed=7, length=6)
    a, b = ds.pair(4), PairDataset(folder, "fbcnn", seed=7, length=6).pair(4)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and a[2] == b[2]
    c = PairDataset(folder, "fbcnn", seed=8, length=6).pair(4)
    assert c[2] != a[2] or not np.array_equal(c[0], a[0])


@pytest.mark.slow
def test_dataloaders_with_0_and_2_workers_yield_identical_pairs(folder):
    from torch.utils.data import DataLoader

    ds = PairDataset(folder, "fbcnn-double", seed=3, length=8)
    runs = []
    for workers in (0, 2):
        dl = DataLoader(ds, batch_size=2, shuffle=False, num_workers=workers)
        runs.append([(b["lq"].numpy(), b["gt"].numpy(), b["qf"].tolist()) for b in dl])
    for (l0, g0, q0), (l2, g2, q2) in zip(*runs, strict=True):
        assert np.array_equal(l0, l2) and np.array_equal(g0, g2) and q0 == q2


def test_fbcnn_pair_is_bench_generates_jpeg_of_the_patch(folder):
    img = np.asarray(Image.open(folder / "a.png"))
    lq, gt, p = FBCNN(img, np.random.default_rng([0, 1]))
    assert lq.shape == gt.shape == (96, 96, 3)
    # rebuild the patch from the recorded crop/mode/shift and encode it the bench way
    big = augment(img[p["crop_y"] : p["crop_y"] + 104, p["crop_x"] : p["crop_x"] + 104], p["mode"])
    out = Jpeg(p["qf"]).apply(big)
    assert qf_from_quant_tables(read_quant_tables(out.bitstream)) == (p["qf"], True)
    sl = (slice(p["shift_y"], p["shift_y"] + 96), slice(p["shift_x"], p["shift_x"] + 96))
    assert np.array_equal(lq, np.asarray(out.decoded)[sl]) and np.array_equal(gt, big[sl])


class Replay:
    """A numpy-Generator stand-in that returns upstream's logged ``random`` calls in order:
    ``random()`` for ``random()``, ``integers(a, b + 1)`` for ``randint(a, b)`` and
    ``integers(0, len(seq))`` (the index) for ``choice(seq)``; any other call is a mismatch."""

    def __init__(self, log: list) -> None:
        self.log, self.i = log, 0

    def _next(self, *want: str) -> tuple[list, object]:
        name, args, value = self.log[self.i]
        assert name in want, f"call {self.i}: upstream made {name}{args}, carbench {want}"
        self.i += 1
        return args, value

    def random(self) -> float:
        return self._next("random")[1]

    def integers(self, lo: int, hi: int) -> int:
        args, value = self._next("randint", "choice")
        if self.log[self.i - 1][0] == "randint":
            assert [lo, hi - 1] == args, f"randint{tuple(args)} upstream, carbench [{lo}, {hi})"
            return value
        assert (lo, hi) == (0, len(args)), f"choice of {args} upstream, carbench [{lo}, {hi})"
        return args.index(value)


@pytest.mark.parametrize(
    "case, recipe",
    [
        ("color", "fbcnn:patch=32"),
        ("gray", "fbcnn-gray:patch=32"),
        ("double", "fbcnn-double:patch=32"),
        ("codiff", "codiff:patch=32"),
    ],
)
def test_recipe_replays_upstreams_draws_into_upstreams_pairs(case, recipe):
    """FBCNN's/CODiff's own __getitem__ (tests/reference/fbcnn_recipes.py) recorded with every
    random call: fed those calls, carbench asks for the same draws in the same order (ranges, QF
    grids, thresholds) and makes the same L/H patches, pixel for pixel."""
    ref = np.load(UPSTREAM)
    r = get_recipe(recipe)
    logs = json.loads(str(ref[f"{case}_log"]))
    for n, log in enumerate(logs):
        rng = Replay(log)
        lq, gt, p = r(ref["image"], rng, lambda _batch, rng=rng: rng)
        assert rng.i == len(log), f"item {n}: carbench made {rng.i} of {len(log)} draws"
        assert np.array_equal(gt, ref[f"{case}_H"][n]), f"item {n} H ({p})"
        assert np.array_equal(lq, ref[f"{case}_L"][n]), f"item {n} L ({p})"
    if case == "double":
        assert {bool(json.loads(str(ref["double_log"]))[n][6][2]) for n in range(16)} == {0, 1}


def test_double_coin_once_per_batch_of_indices(folder):
    """Upstream's coin (``count % batch == 0``) is drawn once per dataset copy (the recorded
    run: 1 coin in 300 items); carbench draws it once per block of ``batch`` indices."""
    assert int(np.load(UPSTREAM)["double_coins_in_300_items"]) == 1
    ds = PairDataset(folder, "fbcnn-double:patch=16,batch=4", seed=5, length=40)
    coins = [ds.pair(i)[2]["double"] for i in range(40)]
    blocks = [set(coins[k : k + 4]) for k in range(0, 40, 4)]
    assert all(len(b) == 1 for b in blocks) and {c for b in blocks for c in b} == {True, False}
    per_pair = PairDataset(folder, "fbcnn-double:patch=16,double=pair", seed=5, length=40)
    coins = [per_pair.pair(i)[2]["double"] for i in range(40)]
    assert any(len(set(coins[k : k + 4])) == 2 for k in range(0, 40, 4))


def test_channels_option_and_bad_options(folder):
    ds = PairDataset(folder, "fbcnn-double:patch=16,channels=rgb", seed=0, length=4)
    assert all(ds.pair(i)[0].shape == (16, 16, 3) for i in range(4))
    gray = PairDataset(folder, "fbcnn-gray:patch=16", seed=0, length=12)
    pairs = [gray.pair(i) for i in range(12)]
    assert {p[2]["channels"] for p in pairs} == {"y", "gray"}
    assert all(p[0].shape == p[1].shape == (16, 16) for p in pairs)
    assert gray[0]["lq"].shape == (1, 16, 16)
    for bad, msg in [
        ("fbcnn:double=pair", "unknown option `double` for recipe fbcnn"),
        ("fbcnn-double:double=epoch", "batch, pair"),
        ("fbcnn:patch=4", ">= 8"),
        ("fbcnn:channels=ycbcr", "rgb, y-gray, y, gray"),
    ]:
        with pytest.raises(ValueError, match=msg):
            get_recipe(bad)


def test_fbcnn_qf_distribution(folder):
    img = np.asarray(Image.open(folder / "b.png"))
    qfs = [FBCNN(img, np.random.default_rng([1, i]))[2]["qf"] for i in range(400)]
    grid = sum(q in (10, 20, 30, 40, 50, 60) for q in qfs) / len(qfs)
    assert 0.72 < grid < 0.86  # 3/4 from the grid plus 1/4 * 6/89 of the uniform draws
    assert min(qfs) >= 8 and max(qfs) <= 96


def test_codiff_patch_size():
    # CODiff's options/codiff.json: H_size 256 on the FBCNN colour recipe
    lq, gt, p = get_recipe("codiff")(data.astronaut(), np.random.default_rng(0))
    assert lq.shape == gt.shape == (256, 256, 3) and 0 <= p["shift_y"] <= 8


def test_generic_spec_draws_and_checks():
    r = GenericRecipe("jpeg:q=uniform(5,95),crop=64")
    assert r.patch == 64
    qs = {r.sample(np.random.default_rng([0, i])).q for i in range(200)}
    assert min(qs) >= 5 and max(qs) <= 95 and len(qs) > 50
    w = GenericRecipe("webp:q=choice(30/50/70)")
    assert {w.sample(np.random.default_rng(i)).id for i in range(50)} == {
        "webp-q30",
        "webp-q50",
        "webp-q70",
    }
    with pytest.raises(ValueError, match="`q` of jpeg takes int 1-100, got '150'"):
        GenericRecipe("jpeg:q=uniform(5,150)")
    with pytest.raises(ValueError, match="unknown training recipe"):
        get_recipe("dncnn")


def test_shards_resume_without_loss_or_duplicates(folder, tmp_path):
    ds = PairDataset(folder, "generic:jpeg:q=uniform(10,90),crop=32", seed=1, length=10)
    assert write_shards(ds, tmp_path, per_shard=3) == (4, 0)
    full = {p.name: p.read_bytes() for p in tmp_path.glob("*.tar")}
    # a "killed" run: one shard missing and a partial .tmp left behind
    (tmp_path / "train-00002.tar").unlink()
    (tmp_path / "train-00003.tar").rename(tmp_path / "train-00003.tar.tmp")
    assert write_shards(ds, tmp_path, per_shard=3, part=(0, 2)) == (1, 1)  # shards 0, 2
    assert write_shards(ds, tmp_path, per_shard=3, part=(1, 2)) == (1, 1)  # shards 1, 3
    assert {p.name: p.read_bytes() for p in tmp_path.glob("*.tar")} == full
    keys = []
    for name in sorted(full):
        with tarfile.open(tmp_path / name) as tar:
            keys += [m.name.split(".")[0] for m in tar.getmembers() if m.name.endswith(".json")]
            meta = json.loads(tar.extractfile(tar.getmembers()[2]).read())
            assert meta["recipe"].startswith("generic:")
    assert keys == [f"{i:09d}" for i in range(10)]


def test_shards_of_other_settings_refused(folder, tmp_path):
    write_shards(PairDataset(folder, "fbcnn", seed=1, length=2), tmp_path, per_shard=2)
    with pytest.raises(ValueError, match="seed differ"):
        write_shards(PairDataset(folder, "fbcnn", seed=2, length=2), tmp_path, per_shard=2)


# the dask run: write_train_shards itself (``bench generate`` does not pass --backend to it yet)
DASK_DRIVER = """import sys
from pathlib import Path
from carbench.cli.cmd_train import write_train_shards
from carbench.core.shard import ALL
images, recipe, out = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
write_train_shards(images, recipe, 0, 60, 4, out, ALL, 2, "dask", False)
"""


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["serial", "dask"])
def test_sigkilled_run_resumes_to_the_same_shards(folder, tmp_path, worker_path, backend):
    """A run killed (SIGKILL to its process group: the Dask scheduler and workers too) after
    two shards, then run again: every pair once, the bytes of an uninterrupted serial run."""
    import os
    import signal
    import subprocess
    import sys
    import time

    recipe = "generic:jpeg:q=uniform(10,90),crop=64"
    cli = [sys.executable, "-m", "carbench.cli", "generate", "--train", "--images", str(folder)]
    cli += ["--recipe", recipe, "--pairs", "60", "--per-shard", "4", "--no-progress", "--out"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    ref, out = tmp_path / "ref", tmp_path / "out"
    subprocess.run([*cli, str(ref)], check=True, env=env, capture_output=True)
    args = [*cli, str(out)]
    if backend == "dask":
        args = [sys.executable, "-c", DASK_DRIVER, str(folder), recipe, str(out)]
    proc = subprocess.Popen(args, env=env, start_new_session=True)
    deadline = time.time() + 60
    while time.time() < deadline and len(list(out.glob("*.tar"))) < 2:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert 2 <= len(list(out.glob("*.tar"))) < 15  # killed part-way
    done = subprocess.run(args, env=env, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert "already complete" in done.stdout.decode()
    assert not list(out.glob("*.tmp"))
    want, keys = _tar_members(ref)
    assert len(want) == 15 and _tar_members(out) == (want, [f"{i:09d}" for i in range(60)])


def _tar_members(folder: Path) -> tuple[dict[str, bytes], list[str]]:
    """Every shard's bytes, and the pair keys of all shards in order."""
    shards = {p.name: p.read_bytes() for p in sorted(folder.glob("train-*.tar"))}
    keys = []
    for name in shards:
        with tarfile.open(folder / name) as tar:
            keys += [
                m.name.removesuffix(".json") for m in tar.getmembers() if m.name.endswith(".json")
            ]
    return shards, keys


TRAIN_ARGS = ("generic:jpeg:q=uniform(10,90),crop=48", 3, 14, 3)  # recipe, seed, pairs, per shard


def _serial(folder: Path, out: Path) -> dict[str, bytes]:
    recipe, seed, pairs, per = TRAIN_ARGS
    assert write_shards(PairDataset(folder, recipe, seed=seed, length=pairs), out, per) == (5, 0)
    shards, keys = _tar_members(out)
    assert keys == [f"{i:09d}" for i in range(pairs)]
    return shards


def _on_backend(folder: Path, out: Path, backend: str, jobs: int, part=None) -> tuple[int, int]:
    from carbench.cli.cmd_train import write_train_shards
    from carbench.core.shard import ALL, parse_shard

    recipe, seed, pairs, per = TRAIN_ARGS
    shard = parse_shard(part) if part else ALL
    return write_train_shards(folder, recipe, seed, pairs, per, out, shard, jobs, backend, False)


@pytest.mark.parametrize("backend", ["threading", "loky"])
def test_backend_shards_equal_serial_and_parts_add_up(folder, tmp_path, backend):
    want = _serial(folder, tmp_path / "serial")
    assert _on_backend(folder, tmp_path / "b", backend, 2, "1/2") == (2, 0)  # shards 1, 3
    assert _on_backend(folder, tmp_path / "b", backend, 2) == (3, 2)
    assert _tar_members(tmp_path / "b")[0] == want
    assert _on_backend(folder, tmp_path / "b", backend, 2) == (0, 5)


@pytest.fixture
def worker_path(monkeypatch):
    """Cluster worker processes import carbench from this checkout."""
    import os

    root = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
    )


@pytest.mark.slow
def test_dask_local_cluster_shards_equal_serial(folder, tmp_path, worker_path):
    import os

    from dask.distributed import Client, LocalCluster, get_task_stream

    want = _serial(folder, tmp_path / "serial")
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True) as cluster:
        with Client(cluster) as client, get_task_stream(client) as stream:
            assert _on_backend(folder, tmp_path / "d", "dask", 2, "0/2") == (3, 0)
            assert _on_backend(folder, tmp_path / "d", "dask", 2) == (2, 3)
            pids = client.run(os.getpid)
    # the 5 shards ran as tasks on the two worker processes, not in this one
    assert len(stream.data) >= 5 and len({t["worker"] for t in stream.data}) >= 1
    assert len(set(pids.values())) == 2 and os.getpid() not in pids.values()
    assert _tar_members(tmp_path / "d")[0] == want


@pytest.mark.slow
def test_ray_local_shards_equal_serial(folder, tmp_path, worker_path):
    import ray

    want = _serial(folder, tmp_path / "serial")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        assert _on_backend(folder, tmp_path / "r", "ray", 2, "1/2") == (2, 0)
        assert _on_backend(folder, tmp_path / "r", "ray", 2) == (3, 2)
    finally:
        ray.shutdown()
    assert _tar_members(tmp_path / "r")[0] == want


@pytest.mark.parametrize("mode", ["RGB", "L", "RGBA", "LA", "P", "I;16", "JPEG"])
def test_read_rgb_is_pillows_rgb(tmp_path, mode):
    """OpenCV reads the common 8-bit files (faster); the pixels are Pillow's ``convert("RGB")``
    for every mode, 16-bit included (Pillow's path)."""
    rgb = data.astronaut()[:40, :56]
    if mode == "JPEG":
        im, path = Image.fromarray(rgb), tmp_path / "x.jpg"
        im.save(path, quality=80)
    else:
        path = tmp_path / "x.png"
        im = Image.fromarray(rgb)
        if mode == "I;16":
            im = Image.fromarray((rgb[..., 0].astype(np.uint16) * 200).astype(np.uint16))
        elif mode == "P":
            im = im.quantize(37)
        elif mode != "RGB":
            im = im.convert(mode)
        im.save(path)
    from carbench.degradations.training import read_rgb

    with Image.open(path) as ref:
        want = np.asarray(ref.convert("RGB"))
    got = read_rgb(path)
    assert got.dtype == np.uint8 and got.shape == (40, 56, 3) and np.array_equal(got, want)


def test_cli_passes_jobs_and_backend_on(folder, tmp_path, monkeypatch):
    """``bench generate --train --jobs 2 --backend loky`` runs on loky and writes the serial
    shards (the backend call is recorded, then made as it is)."""
    import carbench.core.parallel as parallel
    from tests.conftest import run_cli

    seen = []
    real = parallel.run_tasks

    def spy(task, items, jobs, backend, *a, **kw):
        seen.append((jobs, backend))
        return real(task, items, jobs, backend, *a, **kw)

    monkeypatch.setattr(parallel, "run_tasks", spy)

    want = _serial(folder, tmp_path / "serial")
    recipe, seed, pairs, per = TRAIN_ARGS
    args = ["generate", "--train", "--images", folder, "--recipe", recipe, "--seed", seed]
    args += ["--pairs", pairs, "--per-shard", per, "--out", tmp_path / "cli"]
    assert run_cli(*args, "--jobs", 2, "--backend", "loky", "--no-progress") == 0
    assert _tar_members(tmp_path / "cli")[0] == want
    assert seen == [(2, "loky")]
