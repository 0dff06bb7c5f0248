"""The study web app (Starlette, served by uvicorn): rater pages, JSON answers, images, admin.

Every request is validated; a refused one gets a clear status and JSON reason, stores nothing
and is logged (logger ``bench.study.server`` and the database's ``rejects`` table).
"""

from __future__ import annotations

import html
import json
import logging
import re
from pathlib import Path

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from bench.study.db import StudyDB
from bench.study.model import Study

log = logging.getLogger("bench.study.server")
TEMPLATES = Path(__file__).parent / "templates"
_IMAGE_NAME = re.compile(r"[0-9a-f]{16}\.png")
_STATUS = {"replay": 409, "order": 409, "unknown": 404}


def create_app(study: Study, db_url: str | None = None) -> Starlette:
    """The ASGI app for one study folder (answers in ``db_url`` if given, else the study's)."""
    db = StudyDB.open(study, db_url)
    files = {s.file for s in study.stimuli.values()}
    images_dir = study.images_dir.resolve()
    cfg = study.config

    def refuse(request: Request, status: int, reason: str) -> JSONResponse:
        path = request.url.path
        log.warning("refused %d %s %s: %s", status, request.method, path, reason)
        db.reject(status, f"{request.method} {path}", reason)
        return JSONResponse({"error": reason}, status_code=status)

    def rater_of(request: Request):
        return db.rater(request.path_params["token"])

    def item_json(rater, nxt) -> dict:
        if nxt is None:
            done, total = db.progress(rater[0])
            return {"finished": True, "done": done, "total": total}
        pos, item_id, swap, total = nxt
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
        return JSONResponse(item_json(rater, db.next_item(rater[0])))

    async def answer(request: Request) -> Response:
        rater = rater_of(request)
        if rater is None:
            return refuse(request, 403, "unknown rater token")
        try:
            body = json.loads(await request.body())
            pos, value = body["pos"], body["value"]
            ms = body.get("ms")
        except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
            return refuse(request, 400, "body must be JSON {pos: int, value: int, ms?: int}")
        if not all(type(v) is int for v in (pos, value)) or not (ms is None or type(ms) is int):
            return refuse(request, 400, "pos, value and ms must be integers")
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
        return JSONResponse(item_json(rater, db.next_item(rater[0])))

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
        import secrets

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

    async def not_found(request: Request, exc) -> Response:
        return refuse(request, 404, "no such page")

    app = Starlette(
        routes=[
            Route("/r/{token}", page),
            Route("/api/{token}/next", next_item),
            Route("/api/{token}/answer", answer, methods=["POST"]),
            Route("/img/{token}/{name:path}", image),
            Route("/admin/{token}", admin),
            Route("/admin/{token}/progress", admin_json),
        ],
        exception_handlers={404: not_found},
    )
    app.state.db = db
    return app
