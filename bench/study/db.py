"""The answers database: SQLite in WAL mode, one transaction per answer.

Tables: ``raters`` (token, order seed), ``plan`` (each rater's item sequence, fixed when the
rater is added), ``answers`` (primary key rater+position, so an answer is never stored twice)
and ``rejects`` (every refused request, for the admin).
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from pathlib import Path

from bench.study.model import Study, swapped

SCHEMA = """
CREATE TABLE IF NOT EXISTS raters (
  id INTEGER PRIMARY KEY, token TEXT NOT NULL UNIQUE, name TEXT NOT NULL,
  seed INTEGER NOT NULL, created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS plan (
  rater INTEGER NOT NULL REFERENCES raters(id), pos INTEGER NOT NULL, item TEXT NOT NULL,
  is_repeat INTEGER NOT NULL, swap INTEGER NOT NULL, PRIMARY KEY (rater, pos));
CREATE TABLE IF NOT EXISTS answers (
  rater INTEGER NOT NULL REFERENCES raters(id), pos INTEGER NOT NULL, item TEXT NOT NULL,
  value INTEGER NOT NULL, ms INTEGER, created REAL NOT NULL, PRIMARY KEY (rater, pos));
CREATE TABLE IF NOT EXISTS rejects (
  id INTEGER PRIMARY KEY, created REAL NOT NULL, status INTEGER NOT NULL,
  path TEXT NOT NULL, reason TEXT NOT NULL);
"""


class StudyDB:
    """A thread-safe handle on one study's database (one connection, one lock)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=FULL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        self.conn.executescript(SCHEMA)

    def close(self) -> None:
        self.conn.close()

    def add_raters(self, study: Study, n: int, prefix: str = "rater") -> list[tuple[str, str]]:
        """Add ``n`` raters with fresh tokens and seeded plans; returns (name, token) pairs."""
        out = []
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            start = self.conn.execute("SELECT COUNT(*) FROM raters").fetchone()[0]
            for k in range(start, start + n):
                token, name = secrets.token_urlsafe(12), f"{prefix}{k + 1:03d}"
                seed = study.config.seed * 100_003 + k
                cur = self.conn.execute(
                    "INSERT INTO raters(token, name, seed, created) VALUES (?,?,?,?)",
                    (token, name, seed, time.time()),
                )
                rows = [
                    (cur.lastrowid, pos, item, int(rep), int(swapped(seed, pos)))
                    for pos, (item, rep) in enumerate(study.plan(seed))
                ]
                self.conn.executemany("INSERT INTO plan VALUES (?,?,?,?,?)", rows)
                out.append((name, token))
            self.conn.execute("COMMIT")
        return out

    def rater(self, token: str) -> tuple[int, str, int] | None:
        with self._lock:
            return self.conn.execute(
                "SELECT id, name, seed FROM raters WHERE token=?", (token,)
            ).fetchone()

    def next_item(self, rater: int) -> tuple[int, str, int, int] | None:
        """(pos, item, swap, total) of the first unanswered position, None when done."""
        with self._lock:
            total = self.conn.execute(
                "SELECT COUNT(*) FROM plan WHERE rater=?", (rater,)
            ).fetchone()[0]
            row = self.conn.execute(
                "SELECT p.pos, p.item, p.swap FROM plan p LEFT JOIN answers a "
                "ON a.rater=p.rater AND a.pos=p.pos WHERE p.rater=? AND a.pos IS NULL "
                "ORDER BY p.pos LIMIT 1",
                (rater,),
            ).fetchone()
        return None if row is None else (*row, total)

    def progress(self, rater: int) -> tuple[int, int]:
        with self._lock:
            done = self.conn.execute(
                "SELECT COUNT(*) FROM answers WHERE rater=?", (rater,)
            ).fetchone()[0]
            total = self.conn.execute(
                "SELECT COUNT(*) FROM plan WHERE rater=?", (rater,)
            ).fetchone()[0]
        return done, total

    def answer(self, rater: int, pos: int, value: int, ms: int | None) -> str:
        """Store one answer in its own committed transaction. Returns ``ok``, ``replay`` (this
        position is already answered: nothing stored), ``unknown`` (no such position) or
        ``order`` (not the rater's next position)."""
        with self._lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                plan = self.conn.execute(
                    "SELECT item FROM plan WHERE rater=? AND pos=?", (rater, pos)
                ).fetchone()
                if plan is None:
                    return "unknown"
                if self.conn.execute(
                    "SELECT 1 FROM answers WHERE rater=? AND pos=?", (rater, pos)
                ).fetchone():
                    return "replay"
                first = self.conn.execute(
                    "SELECT MIN(p.pos) FROM plan p LEFT JOIN answers a ON a.rater=p.rater "
                    "AND a.pos=p.pos WHERE p.rater=? AND a.pos IS NULL",
                    (rater,),
                ).fetchone()[0]
                if first != pos:
                    return "order"
                self.conn.execute(
                    "INSERT INTO answers VALUES (?,?,?,?,?,?)",
                    (rater, pos, plan[0], value, ms, time.time()),
                )
                self.conn.execute("COMMIT")
                return "ok"
            finally:
                if self.conn.in_transaction:
                    self.conn.execute("ROLLBACK")

    def reject(self, status: int, path: str, reason: str) -> None:
        with self._lock:
            self.conn.execute(
                "INSERT INTO rejects(created, status, path, reason) VALUES (?,?,?,?)",
                (time.time(), status, path[:500], reason[:500]),
            )

    def overview(self) -> list[dict]:
        """Per rater: name, token, answered, total, last answer time."""
        with self._lock:
            rows = self.conn.execute(
                "SELECT r.name, r.token, r.seed, "
                "(SELECT COUNT(*) FROM answers a WHERE a.rater=r.id), "
                "(SELECT COUNT(*) FROM plan p WHERE p.rater=r.id), "
                "(SELECT MAX(created) FROM answers a WHERE a.rater=r.id) "
                "FROM raters r ORDER BY r.id"
            ).fetchall()
        keys = ("name", "token", "seed", "done", "total", "last")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def answers(self) -> list[tuple]:
        """(rater name, pos, item, value, is_repeat, swap) for every stored answer."""
        with self._lock:
            return self.conn.execute(
                "SELECT r.name, a.pos, a.item, a.value, p.is_repeat, p.swap FROM answers a "
                "JOIN raters r ON r.id=a.rater JOIN plan p ON p.rater=a.rater AND p.pos=a.pos "
                "ORDER BY r.id, a.pos"
            ).fetchall()

    def rejects(self) -> list[tuple]:
        with self._lock:
            return self.conn.execute(
                "SELECT status, path, reason FROM rejects ORDER BY id"
            ).fetchall()
