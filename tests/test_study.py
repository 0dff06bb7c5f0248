"""``bench study``: a study built from a real run, served by uvicorn on 127.0.0.1, answered over
HTTP; bad requests refused and logged; SIGKILL loses no answered item."""

from __future__ import annotations

import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from carbench.study.model import Study, file_sha256
from conftest import run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    ws = tmp_path_factory.mktemp("study") / "ws"
    args = ("-w", ws, "-p", "fbcnn", "-g", "jpeg:q=10", "--no-progress")
    assert run_cli("generate", *args) == 0
    assert run_cli("run", *args, "--methods", "jpeg", "--metrics", "psnr") == 0
    return ws


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``bench study serve`` in a subprocess on a free 127.0.0.1 port; restartable."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.port = _port()
        self.base = f"http://127.0.0.1:{self.port}"

    def start(self, folder: Path) -> Server:
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])}
        cmd = [sys.executable, "-m", "carbench.cli", "study", "serve", str(folder)]
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port)], env=env)
        for _ in range(200):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.1).close()
                return self
            except OSError:
                time.sleep(0.05)
        self.proc.kill()
        raise AssertionError("server did not start")

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def server():
    """A study server stopped (SIGTERM) at the end of the test, whatever happens."""
    srv = Server()
    yield srv
    srv.stop()


def _call(url: str, body: dict | None = None) -> tuple[int, dict | str]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, method="POST" if data else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            text = r.read().decode(errors="replace")
            status = r.status
    except urllib.error.HTTPError as e:
        text, status = e.read().decode(), e.code
    try:
        return status, json.loads(text)
    except json.JSONDecodeError:
        return status, text


def _links(folder: Path) -> dict[str, str]:
    return dict(line.split() for line in (folder / "links.txt").read_text().splitlines())


def test_rating_study_over_http(workspace, tmp_path, server):
    folder = tmp_path / "s"
    code = run_cli(
        "study",
        "create",
        folder,
        "-w",
        workspace,
        "--methods",
        "jpeg",
        "--anchors",
        "gt",
        "--crop",
        "64",
        "--raters",
        "2",
        "--repeats",
        "1",
    )
    assert code == 0
    study = Study.load(folder, verify=True)
    assert len(study.stimuli) == 8 and len(study.items) == 8  # 4 images x (gt, jpeg)
    assert all(file_sha256(study.images_dir / s.file) == s.sha256 for s in study.stimuli.values())
    links = _links(folder)
    base = server.start(folder).base
    tok = links["rater001"].rsplit("/", 1)[1]
    assert _call(f"{base}/api/wrongtoken/next")[0] == 403
    status, item = _call(f"{base}/api/{tok}/next")
    assert status == 200 and item["total"] == 9 and item["pos"] == 0
    assert "jpeg" not in json.dumps(item) and "gt" not in json.dumps(item)  # names hidden
    img = item["images"][0]
    assert _call(f"{base}/img/{tok}/{img}")[0] == 200
    assert _call(f"{base}/img/{tok}/..%2F..%2Fstudy.json")[0] == 404
    assert _call(f"{base}/img/{tok}/%2e%2e/answers.sqlite")[0] == 404
    assert _call(f"{base}/api/{tok}/answer", {"pos": 0, "value": 11})[0] == 422
    assert _call(f"{base}/api/{tok}/answer", {"pos": 0, "value": "5"})[0] == 400
    assert _call(f"{base}/api/{tok}/answer", {"pos": 99, "value": 5})[0] == 404
    for pos in range(4):
        status, nxt = _call(f"{base}/api/{tok}/answer", {"pos": pos, "value": pos + 1})
        assert status == 200 and nxt["pos"] == pos + 1
    assert _call(f"{base}/api/{tok}/answer", {"pos": 3, "value": 5})[0] == 409  # replay
    assert _call(f"{base}/admin/nottheadmin")[0] == 403
    status, prog = _call(f"{base}/admin/{study.config.admin_token}/progress")
    assert status == 200 and prog["raters"][0]["done"] == 4 and prog["rejects"] >= 7
    server.kill()  # nothing answered may be lost
    server.start(folder)
    status, nxt = _call(f"{base}/api/{tok}/next")  # resumes where the rater stopped
    assert nxt["pos"] == 4
    for pos in range(4, 9):
        assert _call(f"{base}/api/{tok}/answer", {"pos": pos, "value": 7})[0] == 200
    assert _call(f"{base}/api/{tok}/next")[1]["finished"] is True
    con = sqlite3.connect(folder / "answers.sqlite")
    rows = con.execute("SELECT pos, value FROM answers ORDER BY pos").fetchall()
    assert rows == [(0, 1), (1, 2), (2, 3), (3, 4)] + [(p, 7) for p in range(4, 9)]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert "refused 409" in (folder / "server.log").read_text()
    assert run_cli("study", "report", folder, "--store", workspace, "--resamples", "50") == 0
    from carbench.bench.store import ResultStore

    stored = ResultStore(workspace / "results").load(metric="mos")
    by = {(m, i): v for m, i, v in zip(stored.method, stored.image, stored.value, strict=True)}
    first = {
        study.items[i].stimuli[0]: v
        for i, v in con.execute("SELECT item, value FROM answers WHERE pos < 8")
    }  # rater001's first pass
    for sid, v in first.items():
        s = study.stimuli[sid]
        assert by[s.method, s.image] == v
    html_path = tmp_path / "report.html"  # ratings beside the metrics in the HTML report
    assert run_cli("report", "-w", workspace, "--format", "html", "--out", html_path) == 0
    html = html_path.read_text()
    jpeg_mos = sum(v for sid, v in first.items() if study.stimuli[sid].method == "jpeg") / 4
    assert "MOS↑" in html and "PSNR" in html and f">{jpeg_mos:.2f}<" in html  # MOS: 2 decimals


def test_pairwise_swaps_are_undone(workspace, tmp_path, server):
    folder = tmp_path / "p"
    assert (
        run_cli(
            "study",
            "create",
            folder,
            "-w",
            workspace,
            "--methods",
            "jpeg",
            "--anchors",
            "gt",
            "--mode",
            "pairwise",
            "--raters",
            "1",
            "--repeats",
            "0",
            "--images",
            "2",
        )
        == 0
    )
    study = Study.load(folder)
    assert len(study.items) == 2 and all(len(i.stimuli) == 2 for i in study.items.values())
    tok = _links(folder)["rater001"].rsplit("/", 1)[1]
    base = server.start(folder).base
    chosen = []
    while True:
        status, item = _call(f"{base}/api/{tok}/next")
        if item["finished"]:
            break
        gt_side = [study.stimuli[s].method for s in _by_file(study, item["images"])].index("gt")
        chosen.append(gt_side)
        assert _call(f"{base}/api/{tok}/answer", {"pos": item["pos"], "value": gt_side})[0] == 200
    assert _call(f"{base}/api/{tok}/answer", {"pos": 0, "value": 2})[0] == 422
    con = sqlite3.connect(folder / "answers.sqlite")
    for item, value in con.execute("SELECT item, value FROM answers"):
        assert study.stimuli[study.items[item].stimuli[value]].method == "gt"
    tex = tmp_path / "thurstone.tex"
    args = ("--model", "thurstone", "--resamples", "20", "--format", "latex", "--out", tex)
    assert run_cli("study", "report", folder, *args, "--store", workspace) == 0
    text = tex.read_text()
    assert "Thurstone" in text and r"\begin{tabular}" in text
    from carbench.bench.store import ResultStore

    won = ResultStore(workspace / "results").load(metric="winrate")
    assert set(zip(won.method, won.value, strict=True)) == {("gt", 1.0), ("jpeg", 0.0)}


def _by_file(study: Study, files: list[str]) -> list[str]:
    by = {s.file: s.id for s in study.stimuli.values()}
    return [by[f] for f in files]


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _browser(p):
    if not Path("/usr/bin/chromium").is_file():
        pytest.skip(
            "Debian chromium (/usr/bin/chromium) is not installed; scripts/setup.sh adds it"
        )
    return p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_FLAGS)


def test_rater_in_chromium_clicks_keys_and_resumes(workspace, tmp_path, server):
    """A rater answers by click and by keyboard, closes the page halfway, reopens the link and
    continues; the admin page shows the progress."""
    from playwright.sync_api import sync_playwright

    folder = tmp_path / "b"
    assert (
        run_cli(
            "study",
            "create",
            folder,
            "-w",
            workspace,
            "--methods",
            "jpeg",
            "--anchors",
            "gt",
            "--crop",
            "96",
            "--raters",
            "1",
            "--repeats",
            "1",
        )
        == 0
    )
    study = Study.load(folder)
    links = _links(folder)
    base = server.start(folder).base
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(base + links["rater001"])
        page.wait_for_function("document.body.dataset.ready === '0'")
        shot = Path(__file__).parents[1] / "docs" / "study-rating.png"
        if os.environ.get("CARBENCH_SCREENSHOT"):
            page.screenshot(path=str(shot))
        page.click("#controls button[data-value='8']")
        page.wait_for_function("document.body.dataset.ready === '1'")
        page.keyboard.press("0")  # 10
        page.wait_for_function("document.body.dataset.ready === '2'")
        assert page.inner_text("#count") == "2 / 9"
        page.close()  # halfway
        page = browser.new_page()
        page.goto(base + links["rater001"])
        page.wait_for_function("document.body.dataset.ready === '2'")
        for pos in range(2, 9):
            page.keyboard.press(str(pos % 9 + 1))
            want = "done" if pos == 8 else str(pos + 1)
            page.wait_for_function(f"document.body.dataset.ready === '{want}'")
        admin = browser.new_page()
        admin.goto(f"{base}/admin/{study.config.admin_token}")
        assert admin.inner_text("tr[data-rater='rater001'] td.done") == "9"
        browser.close()
    con = sqlite3.connect(folder / "answers.sqlite")
    values = [v for (v,) in con.execute("SELECT value FROM answers ORDER BY pos")]
    assert values == [8, 10] + [pos % 9 + 1 for pos in range(2, 9)]


def _transforms(page) -> list[str]:
    return page.eval_on_selector_all("#views img", "els => els.map(e => e.style.transform)")


def _shown(page) -> list[str]:
    return page.eval_on_selector_all(
        "#views img", "els => els.map(e => e.getAttribute('src').split('/').pop())"
    )


def test_pairwise_rater_in_chromium_zooms_pans_clicks_keys_and_resumes(workspace, tmp_path, server):
    """A pairwise rater: wheel zoom and drag pan move both sides together; answers by click and
    by keyboard; closes the page halfway and resumes; each stored choice is the stimulus that
    was on the chosen side of the screen."""
    from playwright.sync_api import sync_playwright

    folder = tmp_path / "pw"
    args = ("-w", workspace, "--methods", "jpeg", "--anchors", "gt", "--mode", "pairwise")
    assert run_cli("study", "create", folder, *args, "--crop", "64", "--raters", "1") == 0
    study = Study.load(folder)
    n = len(study.items) + 2  # 4 images x 1 pair, 2 repeats
    link = _links(folder)["rater001"]
    base = server.start(folder).base
    chosen: list[str] = []  # file of the image on the chosen side, per position
    with sync_playwright() as p:
        browser = _browser(p)
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(base + link)
        page.wait_for_function("document.body.dataset.ready === '0'")
        fitted = _transforms(page)
        assert len(fitted) == 2 and fitted[0] == fitted[1]
        box = page.locator(".view").nth(0).bounding_box()
        page.mouse.move(box["x"] + 100, box["y"] + 100)
        page.mouse.wheel(0, -100)  # zoom in on the left view
        page.wait_for_function(
            "(f) => document.querySelector('#views img').style.transform !== f", arg=fitted[0]
        )
        zoomed = _transforms(page)
        assert zoomed[0] == zoomed[1] != fitted[0] and "scale(" in zoomed[0]
        box = page.locator(".view").nth(1).bounding_box()  # drag on the right view
        page.mouse.move(box["x"] + 50, box["y"] + 50)
        page.mouse.down()
        page.mouse.move(box["x"] + 90, box["y"] + 70, steps=4)
        page.mouse.up()
        panned = _transforms(page)
        assert panned[0] == panned[1] != zoomed[0]
        page.keyboard.press("f")  # fit again
        assert _transforms(page) == fitted
        chosen.append(_shown(page)[0])
        page.click("#controls button[data-value='0']")  # left, by click
        page.wait_for_function("document.body.dataset.ready === '1'")
        chosen.append(_shown(page)[1])
        page.keyboard.press("ArrowRight")
        page.wait_for_function("document.body.dataset.ready === '2'")
        chosen.append(_shown(page)[0])
        page.keyboard.press("a")
        page.wait_for_function("document.body.dataset.ready === '3'")
        assert page.inner_text("#count") == f"3 / {n}"
        page.close()  # halfway
        page = browser.new_page(viewport={"width": 1000, "height": 700})
        page.goto(base + link)
        page.wait_for_function("document.body.dataset.ready === '3'")
        for pos in range(3, n):
            side = pos % 2
            chosen.append(_shown(page)[side])
            page.keyboard.press("l" if side else "ArrowLeft")
            want = "done" if pos == n - 1 else str(pos + 1)
            page.wait_for_function(f"document.body.dataset.ready === '{want}'")
        admin = browser.new_page()
        admin.goto(f"{base}/admin/{study.config.admin_token}")
        assert admin.inner_text("tr[data-rater='rater001'] td.done") == str(n)
        browser.close()
    con = sqlite3.connect(folder / "answers.sqlite")
    rows = con.execute("SELECT pos, item, value FROM answers ORDER BY pos").fetchall()
    assert [pos for pos, _, _ in rows] == list(range(n))
    for (_, item, value), file in zip(rows, chosen, strict=True):
        assert study.stimuli[study.items[item].stimuli[value]].file == file


def test_fifty_concurrent_raters_store_every_answer_once(workspace, tmp_path, server):
    from concurrent.futures import ThreadPoolExecutor

    folder = tmp_path / "l"
    assert (
        run_cli(
            "study",
            "create",
            folder,
            "-w",
            workspace,
            "--methods",
            "jpeg",
            "--anchors",
            "gt",
            "--crop",
            "32",
            "--raters",
            "50",
            "--repeats",
            "0",
            "--images",
            "2",
        )
        == 0
    )
    tokens = [v.rsplit("/", 1)[1] for k, v in _links(folder).items() if k != "admin"]
    base = server.start(folder).base

    def rater(k: int) -> int:
        tok, sent = tokens[k], 0
        for pos in range(4):
            assert _call(f"{base}/api/{tok}/answer", {"pos": pos, "value": k % 10 + 1})[0] == 200
            assert _call(f"{base}/api/{tok}/answer", {"pos": pos, "value": 1})[0] == 409
            sent += 1
        return sent

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(rater, range(50), timeout=120)) == 200
    con = sqlite3.connect(folder / "answers.sqlite")
    rows = con.execute("SELECT rater, pos, value FROM answers").fetchall()
    assert len(rows) == 200 and len({(r, p) for r, p, _ in rows}) == 200
    assert all(v == (r - 1) % 10 + 1 for r, _, v in rows)


def _pg_bin(name: str) -> str | None:
    import glob
    import shutil

    found = shutil.which(name) or sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return (found if isinstance(found, str) else found[-1]) if found else None


@pytest.fixture(scope="module")
def postgres():
    """A real PostgreSQL server (Debian's initdb/pg_ctl) on 127.0.0.1 in a temp folder; as
    root it runs as the ``postgres`` user. Yields its URL."""
    import pwd
    import shutil
    import tempfile

    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if not (initdb and pg_ctl):
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) absent; scripts/setup.sh adds them"
        )
    pytest.importorskip("psycopg")
    run_as: list[str] = []
    root = Path(tempfile.mkdtemp(prefix="carbench-pg-"))
    if os.geteuid() == 0:
        try:
            user = pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run the server as")
        os.chown(root, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    port = _port()
    data = root / "data"
    subprocess.run(
        [*run_as, initdb, "-D", str(data), "-A", "trust", "-U", "bench", "--no-sync"],
        check=True,
        capture_output=True,
    )
    opts = f"-c listen_addresses=127.0.0.1 -p {port} -c unix_socket_directories={root}"
    subprocess.run(
        [*run_as, pg_ctl, "-D", str(data), "-l", str(root / "log"), "-o", opts, "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield f"postgresql://bench@127.0.0.1:{port}/postgres"
    finally:
        subprocess.run([*run_as, pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def test_postgres_backend_over_http_survives_sigkill(workspace, tmp_path, server, postgres):
    """``--db postgresql://...``: answers go to PostgreSQL (no SQLite file), replays refused,
    a SIGKILLed server loses nothing, a second study cannot share the database, and
    ``bench study report`` reads the answers back."""
    import psycopg

    folder = tmp_path / "pg"
    args = ("-w", workspace, "--methods", "jpeg", "--anchors", "gt", "--crop", "32")
    cli = ("study", "create", folder, *args, "--raters", "2", "--repeats", "0", "--db", postgres)
    assert run_cli(*cli) == 0
    assert not (folder / "answers.sqlite").exists()
    tok = _links(folder)["rater002"].rsplit("/", 1)[1]
    base = server.start(folder).base
    for pos in range(3):
        assert _call(f"{base}/api/{tok}/answer", {"pos": pos, "value": pos + 2})[0] == 200
    assert _call(f"{base}/api/{tok}/answer", {"pos": 2, "value": 9})[0] == 409  # replay
    assert _call(f"{base}/api/{tok}/answer", {"pos": 0, "value": 0})[0] == 422
    server.kill()
    server.start(folder)
    assert _call(f"{base}/api/{tok}/next")[1]["pos"] == 3  # resumed from PostgreSQL
    for pos in range(3, 8):
        assert _call(f"{base}/api/{tok}/answer", {"pos": pos, "value": 10})[0] == 200
    assert _call(f"{base}/api/{tok}/next")[1]["finished"] is True
    server.stop()
    with psycopg.connect(postgres) as con:
        rows = con.execute(
            "SELECT r.name, a.pos, a.value FROM answers a JOIN raters r ON r.id=a.rater "
            "ORDER BY a.pos"
        ).fetchall()
        refused = con.execute("SELECT status FROM rejects ORDER BY id").fetchall()
    assert rows == [("rater002", p, v) for p, v in enumerate([2, 3, 4] + [10] * 5)]
    assert refused == [(409,), (422,)]
    other = ("study", "create", tmp_path / "pg2", *args, "--raters", "1", "--db", postgres)
    assert run_cli(*other) == 1  # the database belongs to the first study
    assert not (tmp_path / "pg2").exists()
    assert run_cli("study", "report", folder, "--resamples", "20", "--format", "csv") == 0


def test_report_flags_and_excludes_an_outlier_rater(workspace, tmp_path, capsys):
    """Five raters prefer the ground truth, one rates the other way round: it is flagged,
    ``--exclude-outliers`` drops it (named in the footnote) and the MOS is the five's."""
    from carbench.study.db import StudyDB

    folder = tmp_path / "o"
    args = ("-w", workspace, "--methods", "jpeg", "--anchors", "gt", "--crop", "16")
    assert run_cli("study", "create", folder, *args, "--raters", "6", "--repeats", "0") == 0
    study = Study.load(folder)
    images = sorted({s.image for s in study.stimuli.values()})
    db = StudyDB.open(study)
    for rid in range(1, 7):
        while (nxt := db.next_item(rid)) is not None:
            s = study.stimuli[study.items[nxt[1]].stimuli[0]]
            odd = images.index(s.image) % 2
            v = (
                (8 + odd if s.method == "gt" else 3 + odd)
                if rid < 6
                else (2 if s.method == "gt" else 9)
            )
            assert db.answer(rid, nxt[0], v, None) == "ok"
    db.close()
    capsys.readouterr()
    assert run_cli("study", "report", folder, "--resamples", "20") == 0
    flagged = capsys.readouterr()
    assert "Excluded" not in flagged.out and "7.42 [" in flagged.out  # (5 * 8.5 + 2) / 6
    flags = [ln.split() for ln in flagged.err.splitlines()[1:]]
    assert [f[0] for f in flags if f[-1] == "True"] == ["rater006"]
    assert run_cli("study", "report", folder, "--resamples", "20", "--exclude-outliers") == 0
    out = capsys.readouterr().out
    assert "Excluded outlier raters: rater006." in out and "8.50 [" in out and "3.50 [" in out


# --- request limits and validation (issue 20), on a small study built without a workspace ---

LIMIT = 64 * 1024  # the server's request-body limit, in bytes (carbench.study.server.MAX_BODY)
WEEK_MS = 7 * 24 * 3600 * 1000  # the largest ``ms`` the server stores


def _small_study(folder: Path, raters: int) -> tuple[Study, list[str]]:
    """A rating study of three 8x8 images written here (no workspace needed); rater tokens."""
    import numpy as np

    from carbench.core.imageio import write_png_atomic
    from carbench.study.db import StudyDB
    from carbench.study.model import Item, Stimulus, StudyConfig

    study = Study(folder, StudyConfig("small", "rating", 0, "admintoken-small", repeats=0))
    study.images_dir.mkdir(parents=True)
    for k in range(3):
        sid = f"{k:016x}"
        path = study.images_dir / f"{sid}.png"
        write_png_atomic(path, np.full((8, 8, 3), 60 * k, np.uint8))
        sha = file_sha256(path)
        study.stimuli[sid] = Stimulus(sid, "d", "p", "g", "m", f"im{k}", path.name, sha)
        study.items[f"i{k:05d}"] = Item(f"i{k:05d}", (sid,))
    study.save()
    db = StudyDB.open(study)
    tokens = [tok for _, tok in db.add_raters(study, raters)]
    db.close()
    return study, tokens


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    """One server on a small study for the limit tests; each test takes its own rater."""
    folder = tmp_path_factory.mktemp("study-small") / "s"
    study, tokens = _small_study(folder, 12)
    srv = Server().start(folder)
    yield srv, study, iter(tokens)
    srv.stop()


def _rows(folder: Path, sql: str) -> list[tuple]:
    con = sqlite3.connect(folder / "answers.sqlite")
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def _rejects(folder: Path) -> list[tuple]:
    return _rows(folder, "SELECT status, path FROM rejects ORDER BY id")


def _post_raw(base: str, tok: str, text: str) -> tuple[int, dict | str]:
    req = urllib.request.Request(f"{base}/api/{tok}/answer", data=text.encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            body, status = r.read().decode(), r.status
    except urllib.error.HTTPError as e:
        body, status = e.read().decode(), e.code
    try:
        return status, json.loads(body)
    except json.JSONDecodeError:
        return status, body


def _http(port: int, request: bytes, timeout: float = 5) -> tuple[int, dict, dict | str]:
    """Send raw bytes on a fresh connection; (status, headers, JSON or text body) of the reply,
    read until the server closes or the declared length arrived. Times out (fails) when the
    server waits for more of the request instead of answering."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < _length(data):
            try:
                chunk = s.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    try:
        return int(lines[0].split()[1]), headers, json.loads(body)
    except json.JSONDecodeError:
        return int(lines[0].split()[1]), headers, body.decode(errors="replace")


def _length(data: bytes) -> int:
    for line in data.partition(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 1 << 62


def _head(tok: str, extra: str) -> bytes:
    return (
        f"POST /api/{tok}/answer HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Content-Type: application/json\r\n{extra}\r\n"
    ).encode()


def test_huge_integers_get_a_json_400_logged_and_recorded(small):
    """A 5,000-digit integer (beyond Python's int-from-text limit) in any field: a JSON 400,
    nothing stored, the refusal in server.log and in the rejects table."""
    srv, study, tokens = small
    tok = next(tokens)
    huge = "9" * 5000
    before = len(_rejects(study.root))
    for text in (
        f'{{"pos": 0, "value": 5, "ms": {huge}}}',
        f'{{"pos": {huge}, "value": 5}}',
        f'{{"pos": 0, "value": -{huge}}}',
    ):
        status, reply = _post_raw(srv.base, tok, text)
        assert status == 400 and isinstance(reply, dict) and "error" in reply, (status, reply)
    assert _rejects(study.root)[before:] == [(400, f"POST /api/{tok}/answer")] * 3
    assert _call(f"{srv.base}/api/{tok}/next")[1]["pos"] == 0  # nothing stored
    assert (study.root / "server.log").read_text().count(f"refused 400 POST /api/{tok}/") == 3


def test_deeply_nested_json_gets_a_json_400(small):
    """JSON nested 30,000 deep (60 KB, under the body limit): a JSON 400, recorded; nested
    100,000 deep (200 KB) it is over the limit: 413."""
    srv, study, tokens = small
    tok = next(tokens)
    before = len(_rejects(study.root))
    deep = "[" * 30_000 + "]" * 30_000
    status, reply = _post_raw(srv.base, tok, f'{{"pos": 0, "value": {deep}}}')
    assert status == 400 and isinstance(reply, dict) and "error" in reply, (status, reply)
    status, reply = _post_raw(srv.base, tok, "[" * 100_000 + "]" * 100_000)
    assert status == 413 and isinstance(reply, dict) and "error" in reply, (status, reply)
    assert [s for s, _ in _rejects(study.root)[before:]] == [400, 413]
    assert _call(f"{srv.base}/api/{tok}/next")[1]["pos"] == 0


def test_every_field_is_validated(small):
    """``ms`` must be an integer in 0..one week (in ms), ``pos`` in 0..2^31-1, ``value`` in the
    declared scale; only pos, value and ms, each once. Refusals store nothing; a valid answer
    then stores exactly what was sent."""
    srv, study, tokens = small
    tok = next(tokens)
    url = f"{srv.base}/api/{tok}/answer"
    before = len(_rejects(study.root))
    refused = [
        ({"pos": 0, "value": 5, "ms": 2**63}, 422),
        ({"pos": 0, "value": 5, "ms": -1}, 422),
        ({"pos": 0, "value": 5, "ms": WEEK_MS + 1}, 422),
        ({"pos": 0, "value": 5, "ms": 1.5}, 400),
        ({"pos": 0, "value": 5, "ms": True}, 400),
        ({"pos": 2**63, "value": 5}, 422),
        ({"pos": -1, "value": 5}, 422),
        ({"pos": 0, "value": 0}, 422),
        ({"pos": 0, "value": 11}, 422),
        ({"pos": 0, "value": True}, 400),
        ({"pos": 0, "value": 5, "rater": "someone else"}, 400),
        ({"pos": 0}, 400),
        ([0, 5], 400),
    ]
    for body, want in refused:
        status, reply = _call(url, body)
        assert status == want and isinstance(reply, dict) and "error" in reply, (body, reply)
    status, reply = _post_raw(srv.base, tok, '{"pos": 0, "value": 5, "value": 6}')
    assert status == 400 and "error" in reply  # a repeated key is ambiguous
    assert len(_rejects(study.root)) - before == len(refused) + 1
    assert _call(url, {"pos": 0, "value": 10, "ms": WEEK_MS})[0] == 200  # the edges pass
    assert _call(url, {"pos": 1, "value": 1, "ms": 0})[0] == 200
    assert _call(url, {"pos": 2, "value": 7})[0] == 200
    rows = _rows(
        study.root,
        "SELECT a.pos, a.value, a.ms FROM answers a JOIN raters r ON r.id=a.rater "
        f"WHERE r.token='{tok}' ORDER BY a.pos",
    )
    assert rows == [(0, 10, WEEK_MS), (1, 1, 0), (2, 7, None)]


def test_body_over_the_limit_refused_from_its_content_length(small):
    """A declared 100 MiB body with a valid token is refused with a JSON 413 before any of it
    is sent (the server does not wait for it); LIMIT bytes pass, LIMIT + 1 do not."""
    srv, study, tokens = small
    tok = next(tokens)
    before = len(_rejects(study.root))
    status, headers, reply = _http(srv.port, _head(tok, f"Content-Length: {100 << 20}\r\n"))
    assert status == 413 and reply["error"].startswith("request body over 65536 bytes"), reply
    assert headers["content-type"] == "application/json"
    answer = b'{"pos": 0, "value": 4}'
    over = answer + b" " * (LIMIT + 1 - len(answer))
    status, _, reply = _http(srv.port, _head(tok, f"Content-Length: {len(over)}\r\n") + over)
    assert status == 413 and "error" in reply
    assert _rejects(study.root)[before:] == [(413, f"POST /api/{tok}/answer")] * 2
    assert _call(f"{srv.base}/api/{tok}/next")[1]["pos"] == 0
    exact = over[:LIMIT]
    status, _, reply = _http(srv.port, _head(tok, f"Content-Length: {LIMIT}\r\n") + exact)
    assert status == 200 and reply["pos"] == 1, reply
    assert _rows(study.root, "SELECT COUNT(*) FROM answers WHERE value=4") == [(1,)]


def test_streamed_body_capped_while_read(small):
    """A chunked body (no Content-Length) is refused with a JSON 413 as soon as LIMIT + 1
    bytes arrived, without waiting for its end; a small chunked answer is stored."""
    srv, study, tokens = small
    tok = next(tokens)
    chunk = b" " * 8192
    part = b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(LIMIT // len(chunk)))
    part += b"1\r\n \r\n"  # LIMIT + 1 bytes so far; the closing 0-chunk is never sent
    status, _, reply = _http(srv.port, _head(tok, "Transfer-Encoding: chunked\r\n") + part)
    assert status == 413 and "error" in reply, reply
    assert _rejects(study.root)[-1] == (413, f"POST /api/{tok}/answer")
    small_body = b'{"pos": 0, "value": 3}'
    ok = b"%x\r\n%s\r\n0\r\n\r\n" % (len(small_body), small_body)
    status, _, reply = _http(srv.port, _head(tok, "Transfer-Encoding: chunked\r\n") + ok)
    assert status == 200 and reply["pos"] == 1, reply


def test_every_error_is_json(small):
    """Wrong method, unknown page, bad token: JSON errors, each recorded."""
    srv, study, tokens = small
    tok = next(tokens)
    before = len(_rejects(study.root))
    cases = [
        ("GET", f"/api/{tok}/answer", 405),
        ("POST", f"/api/{tok}/next", 405),
        ("GET", "/nothing/here", 404),
        ("GET", "/api/not-a-rater/next", 403),
    ]
    for method, path, want in cases:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n".encode()
        status, headers, reply = _http(srv.port, head)
        assert status == want and headers["content-type"] == "application/json", (path, reply)
        assert isinstance(reply, dict) and reply["error"], reply
    assert [s for s, _ in _rejects(study.root)[before:]] == [w for _, _, w in cases]


def test_favicon_is_not_a_refused_request(small):
    """Browsers ask for /favicon.ico: 204, nothing recorded, the admin count unchanged."""
    srv, study, _ = small
    admin = f"{srv.base}/admin/{study.config.admin_token}/progress"
    before = _call(admin)[1]["rejects"]
    request = b"GET /favicon.ico HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    status, headers, body = _http(srv.port, request)
    assert status == 204 and body == ""
    assert _call(admin)[1]["rejects"] == before == len(_rejects(study.root))
    assert "favicon" not in (study.root / "server.log").read_text()


def test_unexpected_error_is_a_logged_json_500(tmp_path, server):
    """A database the server cannot use (its answers table renamed away underneath it): a JSON
    500, the traceback in server.log, the request in the rejects table; with the rejects table
    gone too, still JSON answers (500, and a 403 keeps its status)."""
    study, tokens = _small_study(tmp_path / "e", 1)
    base = server.start(study.root).base
    con = sqlite3.connect(study.root / "answers.sqlite")
    con.execute("ALTER TABLE answers RENAME TO answers_gone")
    con.commit()
    con.close()
    status, reply = _call(f"{base}/api/{tokens[0]}/answer", {"pos": 0, "value": 5})
    assert status == 500 and isinstance(reply, dict), reply
    assert reply == {"error": "internal server error (logged)"}
    log_text = (study.root / "server.log").read_text()
    assert "Traceback" in log_text and "no such table: answers" in log_text
    assert _rejects(study.root) == [(500, f"POST /api/{tokens[0]}/answer")]
    con = sqlite3.connect(study.root / "answers.sqlite")  # now refusals cannot be recorded
    con.execute("ALTER TABLE rejects RENAME TO rejects_gone")
    con.commit()
    con.close()
    assert _call(f"{base}/api/{tokens[0]}/answer", {"pos": 0, "value": 5}) == (500, reply)
    assert _call(f"{base}/api/not-a-rater/next") == (403, {"error": "unknown rater token"})
    assert "could not record the refused request" in (study.root / "server.log").read_text()


def test_create_prints_the_links_its_help_promises(workspace, tmp_path, capsys):
    """``bench study create`` prints what its help says: a summary line, then the admin link
    and one link per rater, the same lines as links.txt."""
    capsys.readouterr()
    assert run_cli("study", "create", "--help") == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "print a summary, then the admin link and one link per rater" in help_text
    folder = tmp_path / "c"
    args = ("-w", workspace, "--methods", "jpeg", "--anchors", "gt", "--crop", "16")
    assert run_cli("study", "create", folder, *args, "--images", "1", "--raters", "3") == 0
    out = capsys.readouterr().out.splitlines()
    saved = (folder / "links.txt").read_text().splitlines()
    assert saved[0].startswith("admin /admin/") and len(saved) == 4
    assert [line.split()[0] for line in saved[1:]] == ["rater001", "rater002", "rater003"]
    assert out[0] == (
        f"study {folder}: 2 images, 2 items, 3 raters; links (paths under the server's "
        f"address), also in {folder / 'links.txt'}:"
    )
    assert out[1:] == saved


def _standin_outputs(ws: Path, methods: list[str]) -> None:
    """Outputs of methods that cannot run here (diffusion models on CPU): for every jpeg row
    in the store, the decoded input smoothed by a per-method box filter, written as PNGs under
    the workspace with result-store rows pointing at them (``output_path``), as ``bench run``
    writes them. The study only shows these files: what they look like is not what is tested."""
    import numpy as np

    from carbench.bench.generate import decoded_input, read_manifest
    from carbench.bench.store import ResultStore
    from carbench.core.imageio import write_png_atomic
    from carbench.core.workspace import Workspace

    w = Workspace(ws)
    store = ResultStore(ws / "results")
    jpeg = store.load(method="jpeg", metric="psnr")
    rows = []
    for k, m in enumerate(methods):
        for r in jpeg.itertuples():
            rec = read_manifest(w, r.dataset, r.protocol, r.degradation).set_index("image")
            pixels = decoded_input(w, rec.loc[r.image].to_dict(), r.degradation).astype(float)
            smooth = (pixels + np.roll(pixels, k + 1, 0) + np.roll(pixels, k + 1, 1)) / 3
            rel = f"outputs/standin/{m.replace(':', '_')}/{r.degradation}/{r.image}.png"
            write_png_atomic(w.resolve(rel), smooth.round().astype(np.uint8))
            rows.append(
                {
                    **{
                        c: getattr(r, c)
                        for c in (
                            "dataset",
                            "protocol",
                            "degradation",
                            "image",
                            "metric",
                            "variant",
                            "higher_better",
                            "kind",
                        )
                    },
                    "method": m,
                    "value": float(r.value) - k,
                    "output_path": rel,
                    "created": time.time(),
                }
            )
    store.append(rows)


def test_codiff_table4_preset_two_raters_in_chromium_and_the_papers_table(tmp_path, server, capsys):
    """``bench study create --preset codiff-table4`` builds the CODiff supplementary Table 4
    design from the store (DiffBIR, OSEDiff, CODiff at QF 1/5/10/20/80/90/100, 1-10, 20 rater
    links); two raters answer in Chromium, each rating every image with the paper's value for
    its method and QF rounded down (rater001) or up (rater002); ``bench study report`` prints
    the table in the paper's layout (its rows, its columns) with each MOS the mean of the two."""
    import math

    from playwright.sync_api import sync_playwright

    from carbench.study.presets import get_preset

    ws = tmp_path / "ws"
    assert run_cli("study", "create", tmp_path / "x", "-w", ws, "--preset", "codiff-tabel4") == 1
    assert "unknown study preset 'codiff-tabel4'; did you mean `codiff-table4`?" in (
        capsys.readouterr().err
    )
    assert run_cli("study", "create", tmp_path / "x", "-w", ws) == 1
    assert "give --methods (comma-separated method ids) or --preset" in capsys.readouterr().err
    args = ("-w", ws, "-p", "fbcnn", "-g", "jpeg:q=1,5,10,20,80,90,100", "--no-progress")
    assert run_cli("generate", *args) == 0
    assert run_cli("run", *args, "--methods", "jpeg", "--metrics", "psnr") == 0
    preset = get_preset("codiff-table4")
    methods, degradations = preset.design()
    _standin_outputs(ws, methods)
    folder = tmp_path / "t4"
    create = ("study", "create", folder, "-w", ws, "--preset", "codiff-table4")
    assert run_cli(*create, "--images", "1", "--crop", "48", "--repeats", "0") == 0
    study = Study.load(folder)
    assert study.config.mode == "rating" and study.config.preset == "codiff-table4"
    assert (study.config.scale_min, study.config.scale_max) == (1, 10)
    links = _links(folder)
    assert len(links) == 21  # admin + the paper's 20 raters
    assert {s.method for s in study.stimuli.values()} == set(methods)
    assert {s.degradation for s in study.stimuli.values()} == set(degradations)
    paper = preset.published()
    by_file = {s.file: s for s in study.stimuli.values()}
    base = server.start(folder).base
    with sync_playwright() as p:
        browser = _browser(p)
        for rater, rnd in (("rater001", math.floor), ("rater002", math.ceil)):
            page = browser.new_page(viewport={"width": 800, "height": 600})
            page.goto(base + links[rater])
            for pos in range(len(study.items)):
                page.wait_for_function(f"document.body.dataset.ready === '{pos}'")
                s = by_file[_shown(page)[0]]
                value = min(10, max(1, rnd(float(paper[s.method, s.degradation]))))
                page.keyboard.press(str(value % 10))
            page.wait_for_function("document.body.dataset.ready === 'done'")
            page.close()
        browser.close()
    out = tmp_path / "t4.md"
    assert run_cli("study", "report", folder, "--resamples", "20", "--out", out) == 0
    text = out.read_text()
    lines = [ln for ln in text.splitlines() if ln.startswith("| ")]
    head = ["QF=1", "QF=5", "QF=10", "QF=20", "QF=80", "QF=90", "QF=100"]
    cells = [[c.strip() for c in ln.split("|")[1:-1]] for ln in lines]
    assert [c.split(" MOS")[0] for c in cells[0][2:]] == head
    rows = cells[1:]  # after the header (the alignment row starts "|-")
    from carbench.reports.labels import method_label

    assert [r[1] for r in rows] == [method_label(m) for m in methods]  # the paper's row order
    for m, r in zip(methods, rows, strict=True):
        for d, cell in zip(degradations, r[2:], strict=True):
            v = float(paper[m, d])
            want = (min(10, max(1, math.floor(v))) + min(10, max(1, math.ceil(v)))) / 2
            assert cell.strip("*_").startswith(f"{want:.2f} ["), (m, d, cell)
    assert "CODiff ICCV 2025 supplementary, section 5 and Table 4" in text


def _load_driver():
    """``benchmarks/study_load.py`` (the load benchmark), whose driver this test runs."""
    import importlib.util

    path = Path(__file__).parents[1] / "benchmarks" / "study_load.py"
    spec = importlib.util.spec_from_file_location("study_load", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules["study_load"] = module
    spec.loader.exec_module(module)
    return module


def test_fifty_raters_under_load_survive_sigkill(tmp_path):
    """50 raters answer 6 items each at once (one thread per rater); the server is SIGKILLed
    after 100 acknowledged answers and restarted; every rater resumes from /next. Every
    acknowledged answer is stored with the value sent, each (rater, position) once, all 300
    stored; bounded by a 90 s deadline. Latencies (p99) come back for the benchmark's report."""
    load = _load_driver()
    folder = tmp_path / "s"
    tokens = load.make_study(folder, 50, 6)
    server = load.Server(folder).start()
    try:
        res = load.run_load(server, tokens, kill_after=100, deadline_s=90)
    finally:
        server.stop()
    check = load.check_stored(folder, res["acked"], 50, 6)
    assert res["restarts"] == 1 and len(res["acked"]) >= 100
    assert check["lost"] == [] and check["wrong"] == []
    assert check["rows"] == check["unique"] == 300 and check["complete"]
    assert len(res["acked"]) + res["replays"] <= 300
    p = load.percentiles(res["latencies"])
    assert 0 < p["p50"] <= p["p99"] <= p["max"]


def test_adaptive_pairwise_study_plans_each_pair_when_asked(tmp_path, server):
    """A pairwise study with ``adaptive`` 5: two images of four outputs (six pairs each). A
    rater gets five items, each planned when asked for and kept across a SIGKILL, five
    different pairs spread over both images (after an answer, that image's pairs are expected
    to tell less); the second rater's first item is a pair nobody was shown yet."""
    import numpy as np

    from carbench.core.imageio import write_png_atomic
    from carbench.study.db import StudyDB
    from carbench.study.model import Item, Stimulus, StudyConfig

    folder = tmp_path / "a"
    cfg = StudyConfig("adaptive", "pairwise", 0, "admintoken-adaptive", repeats=0, adaptive=5)
    study = Study(folder, cfg)
    study.images_dir.mkdir(parents=True)
    k = 0
    for image in ("im0", "im1"):
        group = []
        for m in "abcd":
            sid = f"{k:016x}"
            path = study.images_dir / f"{sid}.png"
            write_png_atomic(path, np.full((8, 8, 3), 20 * k, np.uint8))
            study.stimuli[sid] = Stimulus(
                sid, "d", "p", "g", m, image, path.name, file_sha256(path)
            )
            group.append(sid)
            k += 1
        for a in range(4):
            for b in range(a + 1, 4):
                iid = f"i{len(study.items):05d}"
                study.items[iid] = Item(iid, (group[a], group[b]))
    study.save()
    db = StudyDB.open(study)
    tokens = [tok for _, tok in db.add_raters(study, 2)]
    db.close()
    assert _rows(folder, "SELECT COUNT(*) FROM plan") == [(0,)]  # nothing planned yet
    base = server.start(folder).base
    first = []
    status, nxt = _call(f"{base}/api/{tokens[0]}/next")
    assert status == 200 and nxt["total"] == 5 and nxt["pos"] == 0
    for pos in range(5):
        if pos == 2:
            server.kill()  # the planned item survives
            server.start(folder)
            assert _call(f"{base}/api/{tokens[0]}/next")[1]["images"] == nxt["images"]
        item = _rows(folder, f"SELECT item FROM plan WHERE pos={pos} AND rater=1")[0][0]
        first.append(item)
        status, nxt = _call(f"{base}/api/{tokens[0]}/answer", {"pos": pos, "value": 0})
        assert status == 200
    assert nxt["finished"] is True and nxt["done"] == 5
    assert len(set(first)) == 5  # never the same pair twice while unseen ones remain
    seen_images = {study.stimuli[study.items[i].stimuli[0]].image for i in first}
    status, nxt2 = _call(f"{base}/api/{tokens[1]}/next")
    item2 = _rows(folder, "SELECT item FROM plan WHERE rater=2")[0][0]
    image2 = study.stimuli[study.items[item2].stimuli[0]].image
    assert seen_images == {"im0", "im1"}  # an answered image's pairs gain less: it alternates
    assert item2 not in first and image2 in seen_images  # a pair nobody compared yet
    rows = _rows(folder, "SELECT rater, pos FROM answers ORDER BY pos")
    assert rows == [(1, p) for p in range(5)]
