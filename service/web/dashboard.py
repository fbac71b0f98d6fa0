"""``GET|HEAD /c/<token>``: a partner's dashboard, one HTML page behind a capability URL.

Every token that opens nothing (malformed, unknown, rotated, its couple gone) gets the same
404, found by the hash of what was presented (``service/dashboard/tokens.py``). The page
carries no script: its Content-Security-Policy allows none, and ``no-referrer`` keeps the
URL out of the Referer header of the links it offers (Google Calendar). Redis or the
database being down is 503 with Retry-After, logged in one line without the token.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from redis.exceptions import RedisError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route

from service.storage import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from service.dashboard import DashboardPages

__all__ = ["DASHBOARD_OPENAPI", "dashboard_route"]

log = logging.getLogger("hearth.web.dashboard")

RETRY_AFTER_S = 30
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Robots-Tag": "noindex, nofollow",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
}
NOT_FOUND_TEXT = "no such page\n"
_RESPONSES = {
    "200": {"description": "The partner's dashboard.", "content": {"text/html": {}}},
    "404": {"description": "No such dashboard (unknown, rotated or malformed token)."},
    "503": {"description": "The store is unreachable; retry after Retry-After seconds."},
}
# A plain Starlette route, like the feed's: its OpenAPI description is written here.
DASHBOARD_OPENAPI = {
    "/c/{token}": {
        method: {
            "summary": f"A partner's dashboard ({method.upper()})",
            "operationId": f"dashboard_{method}",
            "parameters": [
                {
                    "name": "token",
                    "in": "path",
                    "required": True,
                    "description": "The partner's secret dashboard token (32 characters).",
                    "schema": {"type": "string"},
                }
            ],
            "responses": _RESPONSES,
        }
        for method in ("get", "head")
    }
}


def dashboard_route(
    pages: DashboardPages, counted: Callable[[int], None] = lambda status: None
) -> Route:
    """The dashboard route; ``counted`` is told each answer's status (``/metrics``)."""

    async def dashboard(request: Request) -> Response:
        response = await _answer(request)
        counted(response.status_code)
        return response

    async def _answer(request: Request) -> Response:
        token = str(request.path_params["token"])
        try:
            page = await run_in_threadpool(pages.render, token)
        except (RedisError, StorageError) as e:
            log.warning("dashboard unavailable: %s", type(e).__name__)
            return Response(
                "the page is unavailable for a moment\n", status_code=503,
                headers={"Retry-After": str(RETRY_AFTER_S)}, media_type="text/plain",
            )  # fmt: skip
        if page is None:
            return Response(NOT_FOUND_TEXT, status_code=404, media_type="text/plain",
                            headers={"Cache-Control": "no-store"})  # fmt: skip
        if request.method == "HEAD":
            body = page.encode()
            return Response(
                status_code=200,
                headers=HEADERS | {"Content-Length": str(len(body)),
                                   "Content-Type": "text/html; charset=utf-8"},
            )  # fmt: skip
        return HTMLResponse(page, headers=HEADERS)

    return Route("/c/{token}", dashboard, methods=["GET", "HEAD"], name="dashboard")
