"""The Twilio mock for tests: Stoplight Prism serving Twilio's own OpenAPI spec, one per session.

``twilio_mock_url`` starts ``node_modules/.bin/prism`` (``npm ci`` installs it) on a free
port of 127.0.0.1 and stops it after the session; its log is ``prism.log`` in pytest's tmp
dir. ``make_client`` returns a real ``twilio.rest.Client`` whose every request goes to the
mock. The spec the mock serves is tests/fixtures/twilio/twilio_api_v2010.json plus 429, 500
and 503 responses on every operation, so that a test can force one with ``force_status``.
Prism answers with the spec's fixed examples (sid ``SMaaaa…``), never an echo: assert on
``http_client._test_only_last_request`` for what the client sent.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from twilio.http.response import Response
from twilio.rest import Client

from service.senders.twilio import RedirectedHttpClient

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT / "tests" / "fixtures" / "twilio" / "twilio_api_v2010.json"
PRISM = ROOT / "node_modules" / ".bin" / "prism"
# Prism checks the AccountSid in each path against ^AC[0-9a-fA-F]{32}$ (else 422).
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
AUTH_TOKEN = "test-auth-token"  # any token: the mock only wants Basic auth

# The statuses a test may force, with Twilio's error codes for them.
FORCEABLE = {429: 20429, 500: 20500, 503: 20503}
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
_OPERATIONS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


@pytest.fixture(scope="session")
def twilio_mock_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``http://127.0.0.1:PORT`` of a Prism mock of Twilio's 2010 API, up for the session."""
    node = shutil.which("node")
    if node is None or not PRISM.exists():
        missing = "node is not on PATH" if node is None else f"{PRISM} is missing"
        pytest.skip(
            "Node/npm and `npm ci` are needed for the Twilio mock: "
            f"{missing} (run `npm ci --no-fund --no-audit` in {ROOT})"
        )
    workdir = tmp_path_factory.mktemp("twilio-mock")
    spec = workdir / "twilio_api_v2010.json"
    spec.write_text(json.dumps(_with_forceable_errors(json.loads(SPEC.read_text()))))
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log_path = workdir / "prism.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(PRISM), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=os.environ | {"SCARF_ANALYTICS": "false"},
        )
    try:
        _wait_until_answering(process, port, log_path)
        yield url
    finally:
        _stop(process)


class MockTwilioHttpClient(RedirectedHttpClient):
    """The app's redirected HTTP client, pointed at the mock instead of *.twilio.com.

    ``force_status(429, 503)`` makes the next two requests ask Prism for those responses
    (``Prefer: code=NNN``), one status per request, in order.
    """

    def __init__(self, mock_url: str, *, timeout: float | None = 10.0) -> None:
        super().__init__(mock_url, timeout=timeout)
        self._forced: deque[int] = deque()
        self.asked: list[tuple[str, str, dict[str, object]]] = []  # method, path, params

    def force_status(self, *statuses: int) -> None:
        for status in statuses:
            if status not in FORCEABLE:
                raise ValueError(f"the mock spec defines only {sorted(FORCEABLE)}, not {status}")
        self._forced.extend(statuses)

    def request(
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Response:
        if self._forced:
            headers = {**(headers or {}), "Prefer": f"code={self._forced.popleft()}"}
        self.asked.append((method, urlsplit(url).path, dict(params or {})))
        response: Response = super().request(
            method,
            url,
            params=params,
            data=data,
            headers=headers,
            auth=auth,
            timeout=timeout,
            allow_redirects=allow_redirects,
        )
        return response


def make_client(
    mock_url: str, *, timeout: float | None = 10.0
) -> tuple[Client, MockTwilioHttpClient]:
    """A real Twilio ``Client`` talking to ``mock_url``, and its HTTP client for inspection."""
    http_client = MockTwilioHttpClient(mock_url, timeout=timeout)
    return Client(ACCOUNT_SID, AUTH_TOKEN, http_client=http_client), http_client


def _with_forceable_errors(spec: dict[str, Any]) -> dict[str, Any]:
    """``spec`` with Twilio's error JSON for 429, 500 and 503 on every operation.

    Prism serves ``Prefer: code=NNN`` only for statuses the spec defines, and the upstream
    spec defines no errors. 400/422 stay out: with them Prism would answer every invalid
    request with that example instead of its own detailed 422.
    """
    error_schema = {
        "type": "object",
        "properties": {
            "code": {"type": "integer"},
            "message": {"type": "string"},
            "more_info": {"type": "string"},
            "status": {"type": "integer"},
        },
        "required": ["code", "message", "more_info", "status"],
    }
    for path_item in spec["paths"].values():
        for method, operation in path_item.items():
            if method not in _OPERATIONS:
                continue
            for status, code in FORCEABLE.items():
                example = {
                    "code": code,
                    "message": http.client.responses[status],
                    "more_info": f"https://www.twilio.com/docs/errors/{code}",
                    "status": status,
                }
                operation["responses"][str(status)] = {
                    "description": http.client.responses[status],
                    "content": {"application/json": {"schema": error_schema, "example": example}},
                }
    return spec


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _wait_until_answering(process: subprocess.Popen[bytes], port: int, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        if process.poll() is not None:
            _stop(process)
            pytest.fail(f"Prism exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            try:
                connection.request("GET", "/")
                connection.getresponse().read()
            finally:
                connection.close()
        except OSError:
            if time.monotonic() > deadline:
                _stop(process)
                pytest.fail(
                    f"Prism did not answer on port {port} within {START_TIMEOUT_S:.0f} s:\n"
                    f"{log_path.read_text()[-3000:]}"
                )
            time.sleep(0.05)
        else:
            return


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
