"""Load on ``bench study serve``: R simultaneous raters on 127.0.0.1, each answering every item
of a small rating study as fast as the server lets them (one thread per rater, one answer in
flight per rater, each answer a POST that commits before the next item is sent).

Prints the answer latency (p50 / p95 / p99 / max, ms), throughput, and with ``--kill-after N``
SIGKILLs the server once N answers were acknowledged, restarts it on the same folder and lets
every rater resume from ``/next``; then checks that every acknowledged answer is stored with the
value sent, each (rater, position) exactly once, and every rater finished.

    python benchmarks/study_load.py [--raters 50] [--items 20] [--kill-after 400]

The test ``tests/test_study.py::test_fifty_raters_under_load_survive_sigkill`` runs
:func:`run_load` on a smaller study with the same checks.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def make_study(folder: Path, raters: int, items: int) -> list[str]:
    """A rating study of ``items`` 8x8 images (no workspace), ``raters`` tokens."""
    from carbench.core.imageio import write_png_atomic
    from carbench.study.db import StudyDB
    from carbench.study.model import Item, Stimulus, Study, StudyConfig, file_sha256

    study = Study(folder, StudyConfig("load", "rating", 0, "admintoken-load", repeats=0))
    study.images_dir.mkdir(parents=True)
    for k in range(items):
        sid = f"{k:016x}"
        path = study.images_dir / f"{sid}.png"
        write_png_atomic(path, np.full((8, 8, 3), k % 256, np.uint8))
        study.stimuli[sid] = Stimulus(
            sid, "d", "p", "g", "m", f"im{k}", path.name, file_sha256(path)
        )
        study.items[f"i{k:05d}"] = Item(f"i{k:05d}", (sid,))
    study.save()
    db = StudyDB.open(study)
    tokens = [tok for _, tok in db.add_raters(study, raters)]
    db.close()
    return tokens


class Server:
    """``python -m carbench study serve`` on a free 127.0.0.1 port; restartable, SIGKILL-able."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Server:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        cmd = [sys.executable, "-m", "carbench.cli", "study", "serve", str(self.folder)]
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], env=env)
        for _ in range(400):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("server did not start")

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None


def _call(url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, dict]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def value_of(rater: int, pos: int) -> int:
    """The rating rater ``rater`` gives at ``pos`` (1..10), so stored values can be checked."""
    return (rater * 7 + pos * 3) % 10 + 1


def run_load(
    server: Server,
    tokens: list[str],
    kill_after: int | None = None,
    deadline_s: float = 120,
) -> dict:
    """Every rater answers all its items concurrently; with ``kill_after`` the server is
    SIGKILLed once that many answers were acknowledged, and restarted. Returns latencies (s) of
    acknowledged answers, acknowledged (rater index, pos, value), replays, errors, wall time."""
    lock = threading.Lock()
    acked: list[tuple[int, int, int]] = []
    latencies: list[float] = []
    stats = {"replays": 0, "errors": 0, "restarts": 0}
    killed = threading.Event()
    up = threading.Event()
    up.set()
    stop_at = time.monotonic() + deadline_s

    def rater(k: int) -> None:
        base = f"{server.base}/api/{tokens[k]}"
        while time.monotonic() < stop_at:
            up.wait(stop_at - time.monotonic())
            try:
                status, nxt = _call(f"{base}/next")
                if status != 200:
                    raise OSError(f"next: {status}")
                if nxt["finished"]:
                    return
                pos = nxt["pos"]
                t0 = time.perf_counter()
                status, _ = _call(f"{base}/answer", {"pos": pos, "value": value_of(k, pos)})
                dt = time.perf_counter() - t0
            except (OSError, ValueError):  # the server went away mid-request
                with lock:
                    stats["errors"] += 1
                time.sleep(0.05)
                continue
            with lock:
                if status == 200:
                    acked.append((k, pos, value_of(k, pos)))
                    latencies.append(dt)
                    if kill_after is not None and len(acked) >= kill_after and not killed.is_set():
                        killed.set()
                        up.clear()
                        threading.Thread(target=restart, daemon=True).start()
                elif status == 409:
                    stats["replays"] += 1  # stored before the kill, reply lost: not stored twice
                else:
                    stats["errors"] += 1

    def restart() -> None:
        server.kill()
        server.start()
        stats["restarts"] += 1
        up.set()

    t0 = time.perf_counter()
    threads = [threading.Thread(target=rater, args=(k,)) for k in range(len(tokens))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(1.0, stop_at - time.monotonic()))
    wall = time.perf_counter() - t0
    return {"latencies": np.array(latencies), "acked": acked, "wall": wall, **stats}


def check_stored(folder: Path, acked: list[tuple[int, int, int]], raters: int, items: int) -> dict:
    """Every acknowledged answer stored with its value; each (rater, pos) once; all finished."""
    con = sqlite3.connect(folder / "answers.sqlite")
    try:
        rows = con.execute("SELECT rater, pos, value FROM answers").fetchall()
    finally:
        con.close()
    stored = {(r - 1, p): v for r, p, v in rows}  # rater ids are 1-based in the database
    return {
        "rows": len(rows),
        "unique": len(stored),
        "lost": [a for a in acked if stored.get((a[0], a[1])) != a[2]],
        "wrong": [(k, p, v) for (k, p), v in stored.items() if v != value_of(k, p)],
        "complete": len(stored) == raters * items,
    }


def percentiles(latencies: np.ndarray) -> dict[str, float]:
    """p50 / p95 / p99 / max in milliseconds."""
    q = np.quantile(latencies, [0.5, 0.95, 0.99]) * 1000 if len(latencies) else [np.nan] * 3
    return {"p50": q[0], "p95": q[1], "p99": q[2], "max": float(latencies.max() * 1000)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--raters", type=int, default=50, help="simultaneous raters (default 50)")
    ap.add_argument("--items", type=int, default=20, help="items per rater (default 20)")
    ap.add_argument("--kill-after", type=int, default=None, help="SIGKILL after N answers")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "s"
        tokens = make_study(folder, args.raters, args.items)
        server = Server(folder).start()
        try:
            res = run_load(server, tokens, args.kill_after)
        finally:
            server.stop()
        check = check_stored(folder, res["acked"], args.raters, args.items)
    p = percentiles(res["latencies"])
    n = len(res["acked"])
    print(
        f"{args.raters} raters x {args.items} items on 127.0.0.1 (SQLite WAL, synchronous=FULL, "
        f"{os.cpu_count()} CPUs): {n} answers acknowledged in {res['wall']:.1f} s "
        f"({n / res['wall']:.0f}/s); answer latency p50 {p['p50']:.1f} ms, p95 {p['p95']:.1f} "
        f"ms, p99 {p['p99']:.1f} ms, max {p['max']:.1f} ms"
    )
    print(
        f"restarts {res['restarts']}, replays refused {res['replays']}, failed requests "
        f"{res['errors']}; stored {check['rows']} rows ({check['unique']} unique), lost "
        f"{len(check['lost'])}, wrong {len(check['wrong'])}, complete {check['complete']}"
    )


if __name__ == "__main__":
    main()
