"""``GET|HEAD /feeds/<token>.ics``: look up the stored feed by the token's hash and serve it.

Rendering never happens here (the ``feed.render`` actor stores bytes and ETag); a request
costs one hash and one Redis round trip, whatever it gets: a plain GET is one HMGET of the
validators and the body; a conditional GET or a HEAD is one script that reads the
validators, decides 304 itself and returns the body only when it is needed (its length for
HEAD), so a 304 never moves the body out of Redis. Every unknown, rotated or malformed
token gets the same 404. A known token whose feed is not in Redis (Redis was flushed) gets
503 with Retry-After while a render is queued: one per couple per ``RETRY_AFTER_S``, however
many calendar apps ask meanwhile (a ``SET NX`` marker). Redis or the database being down is
503 with Retry-After too, logged in one line: a calendar app retries, nothing is lost.
"""

from __future__ import annotations

import logging
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, cast

from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from service.capabilities import TOKEN_SHAPE, token_hash
from service.feeds.publisher import feed_key, render_requested_key
from service.storage import StorageError

if TYPE_CHECKING:
    from collections.abc import Callable

    from redis.asyncio import Redis as AsyncRedis

    from service.storage import FeedTokens

__all__ = ["FEED_OPENAPI", "feed_route"]

log = logging.getLogger("hearth.web.feeds")

CALENDAR = "text/calendar; charset=utf-8"
RETRY_AFTER_S = 30
_TOKEN = {
    "name": "token",
    "in": "path",
    "required": True,
    "description": "The partner's secret feed token (32 characters, base64url).",
    "schema": {"type": "string"},
}
_CONDITIONAL = [
    {"name": "If-None-Match", "in": "header", "required": False, "schema": {"type": "string"}},
    {"name": "If-Modified-Since", "in": "header", "required": False,
     "schema": {"type": "string"}},
]  # fmt: skip
_RESPONSES = {
    "200": {"description": "The feed (RFC 5545).", "content": {"text/calendar": {}}},
    "304": {"description": "Not modified since the ETag or date given."},
    "404": {"description": "No such feed (unknown, rotated or malformed token)."},
    "503": {
        "description": "The feed is being prepared, or its store is unreachable; retry after "
        "Retry-After seconds."
    },
}
# The route is a plain Starlette one (no validation layer on the hot 304 path), so its
# OpenAPI description is written here and merged into the app's.
FEED_OPENAPI = {
    "/feeds/{token}.ics": {
        method: {
            "summary": f"A partner's calendar feed ({method.upper()})",
            "operationId": f"feed_{method}",
            "parameters": [_TOKEN, *_CONDITIONAL],
            "responses": _RESPONSES,
        }
        for method in ("get", "head")
    }
}
NOT_FOUND = Response("no such feed\n", status_code=404, media_type="text/plain")

# KEYS: the feed. ARGV: method, whether If-None-Match was sent ("1"/"0"), If-Modified-Since
# in Unix seconds (or ""), then the If-None-Match tags. RFC 9110: If-None-Match wins over
# If-Modified-Since. Returns nil (no feed), or {etag, modified, 304 | body | body length}.
_READ = """
local f = redis.call('HMGET', KEYS[1], 'etag', 'modified', 'modified_s')
if not f[1] or not f[2] then return nil end
local fresh = false
if ARGV[2] == '1' then
  for i = 4, #ARGV do
    if ARGV[i] == '*' or ARGV[i] == f[1] then fresh = true end
  end
elseif ARGV[3] ~= '' and f[3] then
  fresh = tonumber(f[3]) <= tonumber(ARGV[3])
end
if fresh then return {f[1], f[2], 304} end
if ARGV[1] == 'HEAD' then return {f[1], f[2], redis.call('HSTRLEN', KEYS[1], 'body')} end
return {f[1], f[2], redis.call('HGET', KEYS[1], 'body')}
"""


def feed_route(
    redis: AsyncRedis,
    tokens: FeedTokens,
    request_render: Callable[[str], None],
    counted: Callable[[int], None] = lambda status: None,
) -> Route:
    """The feed route; ``counted`` is told each answer's status (``/metrics``)."""
    read = redis.register_script(_READ)

    async def feed(request: Request) -> Response:
        response = await _answer(request)
        counted(response.status_code)
        return response

    async def _answer(request: Request) -> Response:
        token = str(request.path_params["token"])
        if not TOKEN_SHAPE.fullmatch(token):
            return NOT_FOUND
        try:
            return await _serve(request, token)
        except (RedisError, StorageError) as e:
            # One line, no traceback: an outage is not a bug, and the client will retry.
            log.warning("feed unavailable: %s: %s", type(e).__name__, e)
            return _unavailable("the feed is unavailable for a moment\n")

    async def _serve(request: Request, token: str) -> Response:
        key = feed_key(token_hash(token))
        conditions = _conditions(request)
        if conditions is None:
            # A plain GET: one HMGET, the body read as is (a script would copy it twice).
            found = await redis.hmget(key, ["etag", "modified", "body"])
            if any(value is None for value in found):
                return await _missing(token)
        else:
            found = await read(keys=[key], args=conditions)
            if found is None:
                return await _missing(token)
        etag_raw, modified_raw, answer = cast("list[bytes | int]", found)
        etag, modified = _text(etag_raw), _text(modified_raw)
        headers = {"ETag": etag, "Last-Modified": modified, "Cache-Control": "private"}
        if answer == 304:
            return Response(status_code=304, headers=headers)
        if request.method == "HEAD":
            return Response(
                status_code=200,
                headers=headers | {"Content-Length": str(answer), "Content-Type": CALENDAR},
            )
        assert isinstance(answer, bytes)
        return Response(answer, media_type=CALENDAR, headers=headers)

    async def _missing(token: str) -> Response:
        found = await run_in_threadpool(tokens.find, token_hash(token))
        if found is None:
            return NOT_FOUND
        marker = render_requested_key(found.couple)
        if await redis.set(marker, b"1", nx=True, ex=RETRY_AFTER_S):
            await run_in_threadpool(request_render, found.couple)
            log.warning("feed of %s/%s not published; render queued", found.couple, found.partner)
        return _unavailable("the feed is being prepared\n")

    return Route("/feeds/{token}.ics", feed, methods=["GET", "HEAD"], name="feed")


def _unavailable(text: str) -> Response:
    return Response(text, status_code=503, headers={"Retry-After": str(RETRY_AFTER_S)},
                    media_type="text/plain")  # fmt: skip


def _text(value: bytes | int) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _conditions(request: Request) -> list[str] | None:
    """The read script's ARGV: the method and the request's validators, normalised; None for
    a GET without validators, which needs no script."""
    if_none_match = request.headers.get("if-none-match")
    since = _seconds(request.headers.get("if-modified-since"))
    if request.method == "GET" and if_none_match is None and not since:
        return None
    head = [request.method, "0" if if_none_match is None else "1", since]
    if if_none_match is None:
        return head
    return head + [t.strip().removeprefix("W/") for t in if_none_match.split(",")]


def _seconds(http_date: str | None) -> str:
    """An HTTP date as Unix seconds, or "" when absent or unreadable (then ignored)."""
    if http_date is None:
        return ""
    try:
        at = parsedate_to_datetime(http_date)
    except (TypeError, ValueError):
        return ""
    return str(int((at if at.tzinfo else at.replace(tzinfo=UTC)).timestamp()))
