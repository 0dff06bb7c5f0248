"""The answers database: SQLite in WAL mode in the study folder, or PostgreSQL when the study
names a ``postgresql://`` URL; one committed transaction per answer.

Tables: ``meta`` (which study owns the database), ``raters`` (token, order seed), ``plan``
(each rater's item sequence, fixed when the rater is added), ``answers`` (primary key
rater+position, so an answer is never stored twice) and ``rejects`` (every refused request).
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import threading
import time
from pathlib import Path

from carbench.core.errors import BenchError
from carbench.study.model import Study, swapped

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (study TEXT NOT NULL);
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


def is_postgres(target: Path | str) -> bool:
    return str(target).startswith(("postgresql://", "postgres://"))


class StudyDB:
    """A thread-safe handle on one study's database (one connection, one lock): a SQLite file,
    or a PostgreSQL database given by URL (psycopg)."""

    def __init__(self, target: Path | str, study_id: str | None = None) -> None:
        self.pg = is_postgres(target)
        self._lock = threading.Lock()
        schema = SCHEMA
        if self.pg:
            import psycopg

            try:
                self.conn = psycopg.connect(str(target), autocommit=True)
            except psycopg.OperationalError as e:
                raise BenchError(f"cannot connect to the study database: {e}") from None
            schema = schema.replace("INTEGER PRIMARY KEY", "BIGSERIAL PRIMARY KEY").replace(
                "REAL", "DOUBLE PRECISION"
            )
        else:
            self.path = Path(target)
            self.conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.execute("PRAGMA foreign_keys=ON")
        for stmt in filter(str.strip, schema.split(";")):
            self.conn.execute(stmt)
        if study_id is not None:
            self._claim(study_id)

    @classmethod
    def open(cls, study: Study, url: str | None = None) -> StudyDB:
        """The study's database: ``url``, else the URL in its config, else its SQLite file."""
        ident = hashlib.sha256(study.config.admin_token.encode()).hexdigest()[:16]
        return cls(url or study.config.db_url or study.db_path, ident)

    def _claim(self, study_id: str) -> None:
        """Record the owning study; refuse a database that already holds another study."""
        with self._lock:
            self._x("BEGIN IMMEDIATE")
            try:
                row = self._x("SELECT study FROM meta").fetchone()
                if row is None:
                    self._x("INSERT INTO meta VALUES (?)", (study_id,))
                elif row[0] != study_id:
                    raise BenchError("the study database holds another study's answers")
                self._x("COMMIT")
            finally:
                self._rollback()

    def _x(self, sql: str, params: tuple = ()):
        """Execute with ``?`` placeholders on either backend."""
        if self.pg:
            sql = sql.replace("?", "%s").replace("BEGIN IMMEDIATE", "BEGIN")
        return self.conn.execute(sql, params)

    def _rollback(self) -> None:
        if self.pg:
            from psycopg.pq import TransactionStatus

            if self.conn.info.transaction_status != TransactionStatus.IDLE:
                self.conn.execute("ROLLBACK")
        elif self.conn.in_transaction:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()

    def add_raters(self, study: Study, n: int, prefix: str = "rater") -> list[tuple[str, str]]:
        """Add ``n`` raters with fresh tokens and seeded plans; returns (name, token) pairs."""
        out = []
        with self._lock:
            self._x("BEGIN IMMEDIATE")
            start = self._x("SELECT COUNT(*) FROM raters").fetchone()[0]
            for k in range(start, start + n):
                token, name = secrets.token_urlsafe(12), f"{prefix}{k + 1:03d}"
                seed = study.config.seed * 100_003 + k
                rid = self._x(
                    "INSERT INTO raters(token, name, seed, created) VALUES (?,?,?,?) RETURNING id",
                    (token, name, seed, time.time()),
                ).fetchone()[0]
                rows = [  # adaptive studies plan each item when it is asked for
                    (rid, pos, item, int(rep), int(swapped(seed, pos)))
                    for pos, (item, rep) in enumerate(study.plan(seed))
                    if not study.config.adaptive
                ]
                sql = "INSERT INTO plan VALUES (?,?,?,?,?)"
                self.conn.cursor().executemany(sql.replace("?", "%s") if self.pg else sql, rows)
                out.append((name, token))
            self._x("COMMIT")
        return out

    def rater(self, token: str) -> tuple[int, str, int] | None:
        with self._lock:
            return self._x("SELECT id, name, seed FROM raters WHERE token=?", (token,)).fetchone()

    def next_item(self, rater: int) -> tuple[int, str, int, int] | None:
        """(pos, item, swap, total) of the first unanswered position, None when done."""
        with self._lock:
            total = self._x("SELECT COUNT(*) FROM plan WHERE rater=?", (rater,)).fetchone()[0]
            row = self._x(
                "SELECT p.pos, p.item, p.swap FROM plan p LEFT JOIN answers a "
                "ON a.rater=p.rater AND a.pos=p.pos WHERE p.rater=? AND a.pos IS NULL "
                "ORDER BY p.pos LIMIT 1",
                (rater,),
            ).fetchone()
        return None if row is None else (*row, total)

    def extend_plan(self, rater: int, seed: int, item: str) -> bool:
        """Append ``item`` as the rater's next position (adaptive studies), with its seeded
        left/right swap, unless an unanswered position is already planned (a concurrent
        request extended it first); True when a row was added."""
        with self._lock:
            self._x("BEGIN IMMEDIATE")
            try:
                if self.pg:
                    self._x("SELECT id FROM raters WHERE id=? FOR UPDATE", (rater,))
                open_pos = self._x(
                    "SELECT COUNT(*) FROM plan p LEFT JOIN answers a ON a.rater=p.rater "
                    "AND a.pos=p.pos WHERE p.rater=? AND a.pos IS NULL",
                    (rater,),
                ).fetchone()[0]
                if open_pos:
                    return False
                pos = self._x("SELECT COUNT(*) FROM plan WHERE rater=?", (rater,)).fetchone()[0]
                self._x(
                    "INSERT INTO plan VALUES (?,?,?,?,?)",
                    (rater, pos, item, 0, int(swapped(seed, pos))),
                )
                self._x("COMMIT")
                return True
            finally:
                self._rollback()

    def plan_items(self, rater: int) -> list[str]:
        """The items planned for a rater so far, in order."""
        with self._lock:
            rows = self._x("SELECT item FROM plan WHERE rater=? ORDER BY pos", (rater,)).fetchall()
        return [r[0] for r in rows]

    def progress(self, rater: int) -> tuple[int, int]:
        with self._lock:
            done = self._x("SELECT COUNT(*) FROM answers WHERE rater=?", (rater,)).fetchone()[0]
            total = self._x("SELECT COUNT(*) FROM plan WHERE rater=?", (rater,)).fetchone()[0]
        return done, total

    def answer(self, rater: int, pos: int, value: int, ms: int | None) -> str:
        """Store one answer in its own committed transaction. Returns ``ok``, ``replay`` (this
        position is already answered: nothing stored), ``unknown`` (no such position) or
        ``order`` (not the rater's next position)."""
        with self._lock:
            self._x("BEGIN IMMEDIATE")
            try:
                if self.pg:  # serialise one rater's answers across server processes too
                    self._x("SELECT id FROM raters WHERE id=? FOR UPDATE", (rater,))
                plan = self._x(
                    "SELECT item FROM plan WHERE rater=? AND pos=?", (rater, pos)
                ).fetchone()
                if plan is None:
                    return "unknown"
                if self._x(
                    "SELECT 1 FROM answers WHERE rater=? AND pos=?", (rater, pos)
                ).fetchone():
                    return "replay"
                first = self._x(
                    "SELECT MIN(p.pos) FROM plan p LEFT JOIN answers a ON a.rater=p.rater "
                    "AND a.pos=p.pos WHERE p.rater=? AND a.pos IS NULL",
                    (rater,),
                ).fetchone()[0]
                if first != pos:
                    return "order"
                self._x(
                    "INSERT INTO answers VALUES (?,?,?,?,?,?)",
                    (rater, pos, plan[0], value, ms, time.time()),
                )
                self._x("COMMIT")
                return "ok"
            finally:
                self._rollback()

    def reject(self, status: int, path: str, reason: str) -> None:
        with self._lock:
            self._x(
                "INSERT INTO rejects(created, status, path, reason) VALUES (?,?,?,?)",
                (time.time(), status, path[:500], reason[:500]),
            )

    def overview(self) -> list[dict]:
        """Per rater: name, token, answered, total, last answer time."""
        with self._lock:
            rows = self._x(
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
            return self._x(
                "SELECT r.name, a.pos, a.item, a.value, p.is_repeat, p.swap FROM answers a "
                "JOIN raters r ON r.id=a.rater JOIN plan p ON p.rater=a.rater AND p.pos=a.pos "
                "ORDER BY r.id, a.pos"
            ).fetchall()

    def rejects(self) -> list[tuple]:
        with self._lock:
            return self._x("SELECT status, path, reason FROM rejects ORDER BY id").fetchall()
