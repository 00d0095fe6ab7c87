"""The HTTP API (FastAPI): inspect, results, health, metrics, reload; OpenAPI at /docs.

Every error answer is ``{"error": "..."}`` with a 4xx/5xx code, including FastAPI's own
validation errors, unknown routes and unexpected failures, so clients parse one shape.
Inference runs on the worker threads, never on the event loop: the handler only reads
the (capped, timed) body, queues a job and awaits its future. Mutating routes refuse
browsers' cross-site requests (:mod:`.crossorigin`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from datetime import datetime, timezone
from typing import Any, Protocol

from fastapi import FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

import defectkit
from defectkit.apps.daemon.auth import bearer_matches, needs_token
from defectkit.apps.daemon.bundles import BundleHolder
from defectkit.apps.daemon.config import ServeConfig, is_loopback
from defectkit.apps.daemon.crossorigin import cross_site_reason
from defectkit.apps.daemon.errors import QueueClosed, QueueFull, StoreError
from defectkit.apps.daemon.jobs import HTTP, Job, JobQueue
from defectkit.apps.daemon.logs import log_event
from defectkit.apps.daemon.metrics import DaemonMetrics
from defectkit.apps.daemon.store import STATUSES, ResultQuery, ResultStore, row_to_json
from defectkit.apps.daemon.uploads import (
    BUSY,
    MULTIPART,
    UploadBudget,
    UploadError,
    check_content_type,
    parse_multipart,
    read_capped,
    safe_name,
)
from defectkit.apps.reviewqueue.store import BoundedStore, ReviewStoreError
from defectkit.errors import BundleError


class Service(Protocol):
    """What the API needs of the running daemon (:class:`defectkit.apps.daemon.service.Service`
    is one); the service imports this module, never the other way round."""

    config: ServeConfig
    token: str | None
    stopping: bool
    uploads: UploadBudget
    queue: JobQueue
    store: ResultStore
    metrics: DaemonMetrics
    bundles: BundleHolder
    review_store: BoundedStore | None

    def health(self) -> tuple[int, dict[str, Any]]: ...

    def reload(self, path: str | None = None) -> dict[str, Any]: ...

METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"
RETRY_AFTER_S = "1"
#: Row ids are SQLite/PostgreSQL BIGINTs; a larger number in a URL is a 422, not a 500.
MAX_ID = 2**63 - 1

_IMAGE_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "image/*": {"schema": {"type": "string", "format": "binary"}},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {"file": {"type": "string", "format": "binary"}},
                }
            },
        },
    }
}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(service: Service) -> FastAPI:
    """The API bound to a started (or, in tests, startable) :class:`Service`."""
    app = FastAPI(
        title="defectkit inspection daemon",
        version=defectkit.__version__,
        description="Verdicts for images from an exported defectkit bundle.",
    )
    _install_error_handlers(app)

    loopback_only = is_loopback(service.config.host)

    @app.middleware("http")
    async def refuse_cross_site(request: Request, call_next):
        reason = cross_site_reason(request.method, request.headers, loopback_only=loopback_only)
        if reason is not None:
            service.metrics.errors.inc(kind="cross_site")
            return error(403, f"refused {reason}; call the API from a tool, not a web page")
        return await call_next(request)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if needs_token(request.url.path, service.token) and not bearer_matches(
            request.headers.get("authorization"), service.token
        ):
            service.metrics.errors.inc(kind="auth")
            return error(401, "missing or wrong bearer token", {"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.post("/v1/inspect", openapi_extra=_IMAGE_BODY, summary="Inspect one image")
    async def inspect_image(request: Request, name: str | None = Query(None, max_length=500)):
        """Send the image as the body (image/* or octet-stream) or as multipart ``file``.

        200 with the verdict JSON; 408 body too slow; 413 too large (bytes, or pixels
        over --max-image-mp); 415 wrong type; 422 not a usable image; 503 + Retry-After
        when the queue or the upload budget is full or the daemon is stopping.
        """
        if service.stopping:
            return error(503, "the daemon is shutting down", {"Retry-After": "5"})
        declared = _declared_length(request.headers.get("content-length"))
        if service.uploads.held + declared > service.uploads.capacity:  # before reading
            service.metrics.errors.inc(kind="queue_full")
            return error(503, BUSY, {"Retry-After": RETRY_AFTER_S})
        held = [0]
        try:
            return await _inspect(request, name, held)
        finally:  # the bytes are held until the verdict is sent, then given back
            service.uploads.give_back(held[0])

    async def _inspect(request: Request, name: str | None, held: list[int]) -> JSONResponse:
        try:
            kind = check_content_type(request.headers.get("content-type"))
            body = await read_capped(
                request.stream(),
                service.config.max_upload_bytes,
                request.headers.get("content-length"),
                timeout=service.config.body_timeout, budget=service.uploads, held=held,
            )  # fmt: skip
            filename = None
            if kind == MULTIPART:
                body, filename = parse_multipart(body, request.headers["content-type"])
        except UploadError as exc:
            if exc.status == 503:
                service.metrics.errors.inc(kind="queue_full")
                return error(503, exc.message, {"Retry-After": RETRY_AFTER_S})
            if exc.status == 408:
                service.metrics.timeouts.inc(phase="body")
            reason = {408: "timeout", 413: "too_large", 415: "content_type"}.get(
                exc.status, "bad_request"
            )
            service.metrics.rejected.inc(source=HTTP, reason=reason)
            return error(exc.status, exc.message, {"Connection": "close"} if exc.status == 408 else None)
        job = Job(source=HTTP, name=safe_name(name) or filename, data=body)
        try:
            service.queue.offer(job)
        except QueueFull:
            service.metrics.errors.inc(kind="queue_full")
            return error(
                503, "the inspection queue is full; retry later", {"Retry-After": RETRY_AFTER_S}
            )
        except QueueClosed:
            return error(503, "the daemon is shutting down", {"Retry-After": "5"})
        outcome = await asyncio.wrap_future(job.future)
        return JSONResponse(
            outcome.body, status_code=outcome.status, headers=outcome.headers or None
        )

    @app.get("/v1/results", summary="List inspections, newest first")
    def list_results(
        since: str | None = Query(None, description="ISO 8601 time or unix seconds (inclusive)"),
        until: str | None = Query(None, description="ISO 8601 time or unix seconds (exclusive)"),
        verdict: str | None = Query(None, pattern="^(good|defect|hold)$"),
        label: str | None = Query(None, alias="class", description="class / label, e.g. scratch"),
        status: str | None = Query(None, pattern="^(" + "|".join(STATUSES) + ")$"),
        source: str | None = Query(None, pattern="^(http|folder|batch)$"),  # batch: inspect batch
        station: str | None = None,
        before: int | None = Query(
            None, ge=1, le=MAX_ID, description="the 'next' cursor of the previous page"
        ),
        limit: int = Query(100, ge=1, le=1000),
    ):
        try:
            query = ResultQuery(
                since=parse_time(since), until=parse_time(until), verdict=verdict, label=label,
                status=status, source=source, station=station, before_id=before, limit=limit,
            )  # fmt: skip
        except ValueError as exc:
            return error(400, str(exc))
        rows = service.store.query(query)
        next_cursor = rows[-1]["id"] if len(rows) == limit else None
        return {"results": [row_to_json(r) for r in rows], "next": next_cursor}

    @app.get("/v1/results/{result_id}", summary="One inspection")
    def get_result(result_id: int = PathParam(ge=1, le=MAX_ID)):
        row = service.store.get(result_id)
        if row is None:
            return error(404, f"no inspection with id {result_id}")
        return row_to_json(row)

    @app.get("/v1/review", summary="Parts marked for review, newest first")
    def list_review(
        before: int | None = Query(
            None, ge=1, le=MAX_ID, description="the 'next' cursor of the previous page"
        ),
        limit: int = Query(100, ge=1, le=1000),
    ):
        """Parts in the bundle's uncertainty band that the review store still keeps, each
        with the model's proposal; the image is at ``/v1/review/{id}/image`` and the
        model's mask (a PNG) at ``/v1/review/{id}/mask``. ``evicted`` counts the parts
        the store dropped, oldest first, to stay within --review-keep/--review-max-mb."""
        store = _review_store()
        items = store.list(limit=limit, before_id=before)
        next_cursor = items[-1].id if len(items) == limit else None
        return {
            "items": [item.to_json() for item in items], "next": next_cursor,
            "queued": store.count(), "evicted": store.evicted(),
            "policy": service.config.review_policy,
        }  # fmt: skip

    @app.get("/v1/review/{item_id}/image", summary="A review part's image, as received")
    def review_image(item_id: int = PathParam(ge=1, le=MAX_ID)):
        item = _review_store().get(item_id)
        if item is None:
            return error(404, f"no review part with id {item_id} (evicted or never kept)")
        return Response(item.image, media_type="application/octet-stream")

    @app.get("/v1/review/{item_id}/mask", summary="The model's defect mask for a review part")
    def review_mask(item_id: int = PathParam(ge=1, le=MAX_ID)):
        item = _review_store().get(item_id)
        if item is None:
            return error(404, f"no review part with id {item_id} (evicted or never kept)")
        if item.mask_png is None:
            return error(404, f"review part {item_id} has no defect mask")
        return Response(item.mask_png, media_type="image/png")

    def _review_store() -> BoundedStore:
        if service.review_store is None:
            raise StarletteHTTPException(503, "the review store is closed")
        return service.review_store

    @app.get("/healthz", summary="Liveness (no token needed)")
    def healthz():
        code, body = service.health()
        return JSONResponse(body, status_code=code)

    @app.get("/metrics", summary="Prometheus metrics", response_class=PlainTextResponse)
    def metrics():
        return PlainTextResponse(service.metrics.render(), media_type=METRICS_TYPE)

    @app.post("/v1/reload", summary="Load a new bundle without dropping requests")
    async def reload(request: Request):
        """Optional JSON body ``{"path": "..."}``: a bundle folder under the bundle root.

        Without a path ``--bundle`` is loaded again as given, its symlink resolved anew
        (a switched ``current`` link is followed; a path from an earlier reload is not
        kept). 200 names the bundle id now served; a refused bundle (422) leaves the
        old one serving.
        """
        raw = await read_capped(
            request.stream(), 64 * 1024, request.headers.get("content-length"),
            timeout=service.config.body_timeout,
        )  # fmt: skip
        path = None
        if raw.strip():
            try:
                payload = json.loads(raw)
                path = payload.get("path") if isinstance(payload, dict) else None
            except (json.JSONDecodeError, UnicodeDecodeError):
                return error(400, 'the body must be JSON like {"path": "bundles/v2"} or empty')
            if path is not None and not isinstance(path, str):
                return error(400, "path must be a string")
        try:
            return await run_in_threadpool(service.reload, path)
        except PermissionError as exc:
            return error(403, str(exc))
        except ValueError as exc:  # ReloadPathError: a NUL byte, an unusable path
            return error(400, str(exc))
        except BundleError as exc:
            return JSONResponse(
                {"error": f"bundle refused, still serving {service.bundles.id}: {exc}",
                 "bundle_id": service.bundles.id},
                status_code=422,
            )  # fmt: skip

    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        return error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return error(422, f"invalid request: {problems}")

    @app.exception_handler(StoreError)
    async def store_error(request: Request, exc: StoreError):
        return error(503, f"the results store is unavailable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(ReviewStoreError)
    async def review_store_error(request: Request, exc: ReviewStoreError):
        return error(503, f"the review store is unavailable: {exc}", {"Retry-After": "5"})

    @app.exception_handler(UploadError)
    async def upload_error(request: Request, exc: UploadError):
        return error(exc.status, exc.message)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        # Last resort: a bug must still answer in the one error shape, without a traceback
        # on the wire (the log has it).
        log_event("http_internal_error", level=logging.ERROR, path=request.url.path,
                  error=f"{type(exc).__name__}: {exc}")  # fmt: skip
        return error(500, f"internal error ({type(exc).__name__}); see the daemon's log")


def _declared_length(value: str | None) -> int:
    """Content-Length as a number for the early budget check; 0 when absent or invalid
    (read_capped answers an invalid one with 400)."""
    try:
        return max(0, int(value)) if value is not None else 0
    except ValueError:
        return 0


def parse_time(value: str | None) -> float | None:
    """ISO 8601 (naive = UTC) or unix seconds -> unix seconds."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            raise ValueError(f"cannot read time {value!r}; use ISO 8601 or unix seconds")
        return seconds
    try:
        when = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"cannot read time {value!r}; use ISO 8601 or unix seconds") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
