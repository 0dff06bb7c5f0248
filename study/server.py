"""The study web app (Starlette, served by uvicorn): rater pages, JSON answers, images, admin.

Every request is validated; a refused one gets a clear status and JSON reason, stores nothing
and is logged (logger ``carbench.study.server`` and the database's ``rejects`` table). Request
bodies over ``MAX_BODY`` bytes are refused (413) from their Content-Length before any of the
body is read, and a streamed (chunked) body is cut off as soon as it passes the limit. An
unexpected exception becomes a JSON 500 with its traceback in the log, recorded as refused.
"""

from __future__ import annotations

import html
import json
import logging
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from carbench.study.db import StudyDB
from carbench.study.model import Study

log = logging.getLogger("carbench.study.server")
TEMPLATES = Path(__file__).parent / "templates"
_IMAGE_NAME = re.compile(r"[0-9a-f]{16}\.png")
_STATUS = {"replay": 409, "order": 409, "unknown": 404}
GROUP = ("dataset", "protocol", "degradation", "image")  # a pair compares outputs of one image
MAX_BODY = 64 * 1024  # bytes; an answer is about 40
MAX_POS = 2**31 - 1  # positions beyond this are refused before they reach the database
MAX_MS = 7 * 24 * 3600 * 1000  # one week: a longer time on one item is not a timing
_MAX_DIGITS = 20  # every valid integer in an answer has fewer digits
ANSWER_KEYS = ("pos", "value", "ms")
INTERNAL_ERROR = "internal server error (logged)"

Refuse = Callable[[str, str, int, str], JSONResponse]


class _BodyTooLarge(Exception):
    """Raised while reading a request body that passes ``MAX_BODY``."""


class RequestGuard:
    """Outer ASGI middleware: refuses bodies over ``limit`` bytes (413, from Content-Length
    before reading, or while reading a streamed body) and turns any unexpected exception into
    a JSON 500 that is logged with its traceback and recorded as refused."""

    def __init__(self, app: ASGIApp, refuse: Refuse, limit: int = MAX_BODY) -> None:
        self.app, self.refuse, self.limit = app, refuse, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        received = 0
        started = False

        async def capped_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    raise _BodyTooLarge
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        async def reply(status: int, reason: str, headers: dict[str, str]) -> None:
            response = self.refuse(method, path, status, reason)
            response.headers.update(headers)
            if not started:
                await response(scope, receive, send)

        try:
            declared = _content_length(scope)
            if declared is not None and declared > self.limit:
                raise _BodyTooLarge  # before reading any of it
            await self.app(scope, capped_receive, tracked_send)
        except _BodyTooLarge:
            too_large = f"request body over {self.limit} bytes (the limit for this server)"
            await reply(413, too_large, {"Connection": "close"})  # the rest is never read
        except ClientDisconnect:
            log.info("client left during %s %s", method, path)
        except Exception as e:
            log.exception("internal error on %s %s", method, path)
            await reply(500, f"internal error: {type(e).__name__}: {e}", {})


def _content_length(scope: Scope) -> int | None:
    """The declared body length, None when absent (uvicorn refuses a malformed one)."""
    for name, value in scope["headers"]:
        if name.lower() == b"content-length" and value.strip().isdigit():
            text = value.strip()
            return int(text) if len(text) <= 18 else 1 << 62
    return None


def _small_int(text: str) -> int:
    """A JSON integer, refused beyond ``_MAX_DIGITS`` digits (Python's own limit is 4300)."""
    if len(text.lstrip("-")) > _MAX_DIGITS:
        raise ValueError(f"an integer with {len(text)} digits (at most {_MAX_DIGITS})")
    return int(text)


def _no_constant(text: str) -> NoReturn:
    """NaN and Infinity are not numbers in an answer."""
    raise ValueError(f"{text} is not a number here")


def _unique_keys(pairs: list[tuple[str, object]]) -> dict:
    """A JSON object whose keys each appear once."""
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice")
    return dict(pairs)


def parse_answer(body: bytes) -> dict:
    """The answer object in a request body; ValueError (with the reason) when it is not JSON
    with small integers, nests too deeply, repeats a key or is not an object."""
    try:
        data = json.loads(
            body,
            parse_int=_small_int,
            parse_constant=_no_constant,
            object_pairs_hook=_unique_keys,
        )
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def create_app(study: Study, db_url: str | None = None) -> Starlette:
    """The ASGI app for one study folder (answers in ``db_url`` if given, else the study's)."""
    db = StudyDB.open(study, db_url)
    files = {s.file for s in study.stimuli.values()}
    images_dir = study.images_dir.resolve()
    cfg = study.config

    def record(method: str, path: str, status: int, reason: str) -> JSONResponse:
        """Log and record a refused request; the JSON error response for it (also when the
        database cannot record it)."""
        log.warning("refused %d %s %s: %s", status, method, path, reason)
        try:
            db.reject(status, f"{method} {path}", reason)
        except Exception:
            log.exception("could not record the refused request %s %s", method, path)
        return JSONResponse({"error": reason if status != 500 else INTERNAL_ERROR}, status)

    def refuse(request: Request, status: int, reason: str) -> JSONResponse:
        """``record`` for a routed request."""
        return record(request.method, request.url.path, status, reason)

    def rater_of(request: Request) -> tuple[int, str, int] | None:
        return db.rater(request.path_params["token"])

    pairs = {  # adaptive studies: item -> (image of a set, stimulus a, stimulus b)
        i: ("/".join(getattr(study.stimuli[it.stimuli[0]], f) for f in GROUP), *it.stimuli)
        for i, it in study.items.items()
        if len(it.stimuli) == 2
    }

    def upcoming(rater: tuple[int, str, int]):
        """The rater's next planned item; in an adaptive study, when none is planned and the
        rater has comparisons left, the one of largest expected information gain given every
        answer so far is planned first (``carbench.study.adaptive.choose_item``)."""
        nxt = db.next_item(rater[0])
        if nxt is not None or not cfg.adaptive:
            return nxt
        seen = db.plan_items(rater[0])
        if len(seen) >= cfg.adaptive:
            return None
        import numpy as np

        from carbench.study.adaptive import choose_item

        answers = [(item, value) for _, _, item, value, _, _ in db.answers()]
        rng = np.random.default_rng([rater[2], len(seen)])
        db.extend_plan(rater[0], rater[2], choose_item(pairs, answers, set(seen), rng))
        return db.next_item(rater[0])

    def item_json(rater, nxt) -> dict:
        if nxt is None:
            done, total = db.progress(rater[0])
            return {"finished": True, "done": done, "total": cfg.adaptive or total}
        pos, item_id, swap, total = nxt
        total = cfg.adaptive or total
        stim = list(study.items[item_id].stimuli)
        if swap:
            stim.reverse()
        return {
            "finished": False,
            "pos": pos,
            "done": pos if pos < total else total,
            "total": total,
            "images": [study.stimuli[s].file for s in stim],
        }

    async def page(request: Request) -> Response:
        rater = rater_of(request)
        if rater is None:
            return refuse(request, 403, "unknown rater token")
        text = (TEMPLATES / "rate.html").read_text()
        settings = {
            "token": request.path_params["token"],
            "mode": cfg.mode,
            "min": cfg.scale_min,
            "max": cfg.scale_max,
            "question": cfg.question
            or ("How good is this image?" if cfg.mode == "rating" else "Which image looks better?"),
        }
        return HTMLResponse(
            text.replace("__SETTINGS__", json.dumps(settings).replace("<", "\\u003c"))
        )

    async def next_item(request: Request) -> Response:
        rater = rater_of(request)
        if rater is None:
            return refuse(request, 403, "unknown rater token")
        return JSONResponse(item_json(rater, upcoming(rater)))

    async def answer(request: Request) -> Response:
        rater = rater_of(request)
        if rater is None:
            return refuse(request, 403, "unknown rater token")
        shape = "body must be a JSON object {pos: int, value: int, ms?: int}"
        try:
            body = parse_answer(await request.body())
        except ValueError as e:
            return refuse(request, 400, f"{shape}: {str(e)[:200]}")
        if not {"pos", "value"} <= body.keys() or body.keys() - set(ANSWER_KEYS):
            return refuse(request, 400, f"{shape}, nothing else; got keys {sorted(body)[:5]}")
        pos, value, ms = body["pos"], body["value"], body.get("ms")
        if not all(type(v) is int for v in (pos, value)) or not (ms is None or type(ms) is int):
            return refuse(request, 400, "pos, value and ms must be integers")
        if not 0 <= pos <= MAX_POS:
            return refuse(request, 422, f"pos {pos} outside 0..{MAX_POS}")
        if ms is not None and not 0 <= ms <= MAX_MS:
            return refuse(request, 422, f"ms {ms} outside 0..{MAX_MS} (milliseconds on the item)")
        if cfg.mode == "rating":
            if not cfg.scale_min <= value <= cfg.scale_max:
                return refuse(
                    request, 422, f"rating {value} outside {cfg.scale_min}..{cfg.scale_max}"
                )
            stored = value
        else:
            if value not in (0, 1):
                return refuse(request, 422, f"choice {value} must be 0 (left) or 1 (right)")
            nxt = db.next_item(rater[0])
            swap = nxt[2] if nxt is not None and nxt[0] == pos else 0
            stored = value ^ swap  # index of the preferred stimulus in the item's order
        status = db.answer(rater[0], pos, stored, ms)
        if status != "ok":
            reasons = {
                "replay": f"position {pos} is already answered (nothing stored)",
                "order": f"position {pos} is not this rater's next item",
                "unknown": f"no item at position {pos}",
            }
            return refuse(request, _STATUS[status], reasons[status])
        return JSONResponse(item_json(rater, upcoming(rater)))

    async def image(request: Request) -> Response:
        if rater_of(request) is None:
            return refuse(request, 403, "unknown rater token")
        name = request.path_params["name"]
        if not _IMAGE_NAME.fullmatch(name) or name not in files:
            return refuse(request, 404, f"no image {name!r} in this study")
        path = (images_dir / name).resolve()
        if path.parent != images_dir or not path.is_file():
            return refuse(request, 404, f"no image {name!r} in this study")
        return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private"})

    def admin_ok(request: Request) -> bool:
        return secrets.compare_digest(request.path_params["token"], cfg.admin_token)

    async def admin(request: Request) -> Response:
        if not admin_ok(request):
            return refuse(request, 403, "wrong admin token")
        base = str(request.base_url).rstrip("/")
        rows = "".join(
            f"<tr data-rater='{html.escape(r['name'])}'><td>{html.escape(r['name'])}</td>"
            f"<td><a href='{base}/r/{r['token']}'>link</a></td><td class='done'>{r['done']}</td>"
            f"<td>{r['total']}</td><td><progress max='{r['total']}' value='{r['done']}'></progress>"
            "</td></tr>"
            for r in db.overview()
        )
        text = (TEMPLATES / "admin.html").read_text()
        text = text.replace("__NAME__", html.escape(cfg.name)).replace("__ROWS__", rows)
        text = text.replace("__REJECTS__", str(len(db.rejects())))
        return HTMLResponse(text)

    async def admin_json(request: Request) -> Response:
        if not admin_ok(request):
            return refuse(request, 403, "wrong admin token")
        return JSONResponse({"raters": db.overview(), "rejects": len(db.rejects())})

    async def favicon(request: Request) -> Response:
        """Browsers ask for it unprompted: no content, and not a refused request."""
        return Response(status_code=204, headers={"Cache-Control": "max-age=86400"})

    async def http_error(request: Request, exc: Exception) -> Response:
        """Starlette's own refusals (no such page, wrong method) as JSON, recorded."""
        assert isinstance(exc, HTTPException)
        reason = "no such page" if exc.status_code == 404 else str(exc.detail)
        response = refuse(request, exc.status_code, reason)
        response.headers.update(exc.headers or {})
        return response

    app = Starlette(
        routes=[
            Route("/r/{token}", page),
            Route("/api/{token}/next", next_item),
            Route("/api/{token}/answer", answer, methods=["POST"]),
            Route("/img/{token}/{name:path}", image),
            Route("/admin/{token}", admin),
            Route("/admin/{token}/progress", admin_json),
            Route("/favicon.ico", favicon),
        ],
        middleware=[Middleware(RequestGuard, refuse=record, limit=MAX_BODY)],
        exception_handlers={HTTPException: http_error},
    )
    app.state.db = db
    return app
