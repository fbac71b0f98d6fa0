"""A stateful fake of Twilio's REST API: messages that exist, progress and call back.

Prism (tests/twilio_mock.py) checks request shapes but answers every request with the same
example; this fake remembers. ``TwilioFake`` is an HTTP server on 127.0.0.1 that stores the
messages it is asked to create, lists and fetches them in Twilio's JSON shapes, and on
``advance()`` moves them to ``sent`` and on to their outcome, posting each status callback
form-encoded and signed the way Twilio does. A test scripts the awkward answers:

    hang_after_accepting(count, seconds)   store the message, answer after ``seconds``
    fail_next(status, code, accepted=...)  answer with Twilio's error JSON (stored first?)
    refuse(to, code, status)               every create to ``to`` is refused with ``code``
    set_outcome(to, status, error_code)    what ``advance`` reports for texts to ``to``

The app reaches it with ``HEARTH_TWILIO_API_URL=<fake.url>``; a test in-process with
``Client(fake.account_sid, fake.auth_token, http_client=RedirectedHttpClient(fake.url))``.
The ``twilio_fake`` fixture yields a started fake and stops it.

What the fake takes from the real service, and where it simplifies:

- Creates are validated before anything is scripted: a text Twilio would reject with a 400
  is rejected here too, and consumes no scripted behaviour.
- ``DateSent`` filters read the message's ``date_sent``, which stays null until the text
  is sent: a text still ``queued`` or ``accepted`` is in no date-filtered list (Twilio's
  behaviour, and the trap for anyone asking "did this go out since T?" too early). The
  library sends ``date_sent_after=datetime`` as ``DateSent>=YYYY-MM-DDTHH:MM:SSZ``; the
  fake compares to the second, inclusive, and a bare ``YYYY-MM-DD`` by day.
- ``advance`` posts ``sent`` and then the outcome, ``failed`` included, although Twilio
  often reports ``failed`` straight from ``queued``; a test wanting that order posts it by
  hand with ``callback``. Messages' ``error_message`` stays null, as Twilio leaves it.
- A list answered with an error surfaces in the library as a bare ``TwilioException``
  ("Unable to fetch page"), not a ``TwilioRestException``: no status or code on it.
- Lists are newest first. Pages continue from a cursor (``PageToken=PA<last sid>``), as
  Twilio's do, so a text created while a test pages through does not shift the pages.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import email.utils
import hmac
import http.client
import json
import math
import re
import secrets
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest

# twilio ships no type information (no py.typed); its names are Any to mypy.
from twilio.request_validator import (  # type: ignore[import-untyped,unused-ignore]
    RequestValidator,
)

__all__ = [
    "CallbackPost",
    "CreateRequest",
    "FakeMessage",
    "FakeMessagingService",
    "FakeNumber",
    "MessageStatus",
    "TwilioFake",
    "twilio_fake",
]

MessageStatus = Literal[
    "accepted", "queued", "sending", "sent", "delivered", "undelivered", "failed"
]
Outcome = Literal["sent", "delivered", "undelivered", "failed"]

API_VERSION = "2010-04-01"
# Twilio's magic test number: the sender of a messaging service that was given none.
DEFAULT_SENDER = "+15005550006"
# Longer than the app's 15 s HTTP timeout, so a hang is a read timeout by default.
DEFAULT_HANG_S = 20.0
CALLBACK_TIMEOUT_S = 2.0
MAX_BODY = 1600  # characters: Twilio refuses longer bodies with 21617
MAX_PAGE_SIZE = 1000
DEFAULT_PAGE_SIZE = 50
VALIDITY_PERIOD_S = range(1, 36_001)

_T = TypeVar("_T")


@dataclass(frozen=True)
class FakeMessage:
    """One stored message; ``received_at`` is ``time.time()`` when its create arrived."""

    sid: str
    to: str
    from_: str | None
    messaging_service_sid: str | None
    body: str
    status: MessageStatus
    error_code: int | None
    date_created: datetime
    date_updated: datetime
    date_sent: datetime | None
    status_callback: str | None
    validity_period: int | None
    received_at: float


@dataclass(frozen=True)
class CreateRequest:
    """One ``POST …/Messages.json`` as it arrived, refused or not, and what was answered.

    ``sid`` is the stored message's (None when nothing was stored); ``status`` is the HTTP
    status answered, or about to be for a create that is being held.
    """

    received_at: float
    form: Mapping[str, str]
    status: int
    code: int | None
    sid: str | None


@dataclass(frozen=True)
class CallbackPost:
    """One status callback the fake posted: ``status`` is the HTTP status the receiver
    answered, 0 when there was no answer (``error`` then says why)."""

    url: str
    form: Mapping[str, str]
    signature: str
    status: int
    error: str | None = None


@dataclass(frozen=True)
class FakeNumber:
    """An incoming phone number of the account (``PN…``)."""

    sid: str
    phone_number: str
    friendly_name: str
    sms_url: str | None
    sms_method: str
    status_callback: str | None
    date_created: datetime
    date_updated: datetime


@dataclass(frozen=True)
class FakeMessagingService:
    """A messaging service (``MG…``); ``sender`` is the number its texts go out from."""

    sid: str
    friendly_name: str
    inbound_request_url: str | None
    inbound_method: str
    status_callback: str | None
    use_inbound_webhook_on_number: bool
    sender: str
    date_created: datetime
    date_updated: datetime


class TwilioFake:
    """Twilio's REST API for one account, in memory, on ``http://127.0.0.1:<free port>``.

    Every method is thread-safe: the server answers each request on its own thread, and a
    test scripts and inspects from its own. Callbacks are posted from the thread that calls
    ``advance`` or ``callback``, never while the state lock is held, so a receiver may call
    the fake back.
    """

    def __init__(
        self,
        *,
        account_sid: str | None = None,
        auth_token: str | None = None,
        callback_timeout_s: float = CALLBACK_TIMEOUT_S,
    ) -> None:
        self.account_sid = account_sid or _sid("AC")
        self.auth_token = auth_token or secrets.token_hex(16)
        self.callback_timeout_s = callback_timeout_s
        # Seconds added to the fake's clock, like HEARTH_CLOCK_OFFSET_S for the processes it
        # serves: its message dates then read in the same shifted time as theirs.
        self.clock_offset_s = 0.0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._messages: dict[str, FakeMessage] = {}  # in creation order
        self._creates: list[CreateRequest] = []
        self._callbacks: list[CallbackPost] = []
        self._scripts: deque[_Script] = deque()
        self._refusals: dict[str, tuple[int, int]] = {}  # to → (HTTP status, code)
        self._outcomes: dict[str, tuple[Outcome, int | None]] = {}
        self._numbers: dict[str, FakeNumber] = {}
        self._services: dict[str, FakeMessagingService] = {}

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> TwilioFake:
        """Starts serving on a free port of 127.0.0.1; returns the fake itself."""
        if self._server is not None:
            raise RuntimeError("the Twilio fake is already started")
        self._stopping.clear()
        server = _Server(("127.0.0.1", 0), _Handler, self)
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"twilio-fake-{server.server_address[1]}",
            daemon=True,
        )
        self._server, self._thread = server, thread
        thread.start()
        return self

    def _now(self) -> datetime:
        return datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)

    def stop(self) -> None:
        """Stops serving; held answers are released at once. Safe to call twice."""
        server, thread = self._server, self._thread
        if server is None or thread is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        thread.join()
        self._server = self._thread = None

    def __enter__(self) -> TwilioFake:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, the base URL for ``HEARTH_TWILIO_API_URL``."""
        if self._server is None:
            raise RuntimeError("the Twilio fake is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # -- scripted behaviour ----------------------------------------------------------------

    def hang_after_accepting(
        self, count: int = 1, seconds: float = DEFAULT_HANG_S, *, to: str | None = None
    ) -> None:
        """The next ``count`` valid creates (to ``to`` only, when given) store their
        message, then hold the 201 for ``seconds``: longer than the client's read timeout,
        it is the ambiguous failure (Twilio has the text, the client heard nothing)."""
        self._script(count, _Script(hang_s=seconds, to=to))

    def fail_next(
        self,
        status: int,
        code: int,
        *,
        accepted: bool = False,
        count: int = 1,
        to: str | None = None,
    ) -> None:
        """The next ``count`` valid creates (to ``to`` only, when given) are answered
        ``status`` with Twilio's error JSON for ``code``; with ``accepted`` the message is
        stored first (a 5xx after Twilio took the text)."""
        self._script(count, _Script(fail=(status, code), accepted=accepted, to=to))

    def refuse(self, to: str, code: int, status: int = 400) -> None:
        """Every create to ``to`` is answered ``status`` with ``code`` (21211 invalid
        number, 21614 not a mobile number, 21610 unsubscribed) and nothing is stored."""
        with self._lock:
            self._refusals[to] = (status, code)

    def set_outcome(
        self, to: str, status: Outcome = "delivered", error_code: int | None = None
    ) -> None:
        """What ``advance`` ends texts to ``to`` with (``delivered`` unless set);
        ``error_code`` (e.g. 30003 unreachable, 30006 landline) goes with undelivered or
        failed."""
        if status in ("undelivered", "failed") and error_code is None:
            raise ValueError(f"an outcome of {status} needs its error_code (e.g. 30003)")
        with self._lock:
            self._outcomes[to] = (status, error_code)

    # -- progress and callbacks ------------------------------------------------------------

    def advance(self, sid: str | None = None) -> list[CallbackPost]:
        """Moves the message ``sid`` (or every ``queued``/``accepted`` one, oldest first)
        to ``sent``, setting ``date_sent``, then to its outcome, and posts a status callback
        for each transition to the message's StatusCallback (or its messaging service's).

        Returns the callbacks posted, in order. A message already past ``queued`` is left
        alone; an unknown ``sid`` is a ``KeyError``.
        """
        with self._lock:
            if sid is not None:
                if sid not in self._messages:
                    raise KeyError(f"no message {sid} in the Twilio fake")
                pending = [self._messages[sid]]
            else:
                pending = list(self._messages.values())
            pending = [m for m in pending if m.status in ("queued", "accepted")]
        posted: list[CallbackPost] = []
        for message in pending:
            with self._lock:
                outcome, error_code = self._outcomes.get(message.to, ("delivered", None))
            steps: list[tuple[MessageStatus, int | None]] = [("sent", None)]
            if outcome != "sent":
                steps.append((outcome, error_code))
            for status, code in steps:
                updated = self._transition(message.sid, status, code)
                if updated is None:
                    break  # another thread's advance took this message first
                url = self._callback_url(updated)
                if url is not None:
                    posted.append(self._post_callback(updated, status, code, url, None))
        return posted

    def callback(
        self,
        sid: str,
        status: MessageStatus,
        error_code: int | None = None,
        *,
        url: str | None = None,
        signature: str | None = None,
    ) -> int:
        """Posts one status callback for message ``sid`` by hand, changing nothing stored:
        to forge (``signature``), duplicate or reorder callbacks. ``url`` defaults to the
        message's StatusCallback. Returns the receiver's HTTP status, 0 when none came."""
        message = self.message(sid)
        target = url or self._callback_url(message)
        if target is None:
            raise ValueError(f"message {sid} has no StatusCallback: pass url=")
        return self._post_callback(message, status, error_code, target, signature).status

    # -- account setup ---------------------------------------------------------------------

    def add_number(
        self,
        phone_number: str,
        *,
        sms_url: str | None = None,
        sms_method: str = "POST",
        status_callback: str | None = None,
        friendly_name: str | None = None,
    ) -> str:
        """Seeds an incoming phone number of the account; returns its sid (``PN…``)."""
        now = self._now()
        number = FakeNumber(
            sid=_sid("PN"),
            phone_number=phone_number,
            friendly_name=friendly_name or phone_number,
            sms_url=sms_url,
            sms_method=sms_method,
            status_callback=status_callback,
            date_created=now,
            date_updated=now,
        )
        with self._lock:
            self._numbers[number.sid] = number
        return number.sid

    def add_messaging_service(
        self,
        *,
        friendly_name: str = "Hearth",
        inbound_request_url: str | None = None,
        inbound_method: str = "POST",
        status_callback: str | None = None,
        use_inbound_webhook_on_number: bool = False,
        sender: str = DEFAULT_SENDER,
    ) -> str:
        """Seeds a messaging service; returns its sid (``MG…``). Its texts go out from
        ``sender``, and call back ``status_callback`` when the create named none."""
        now = self._now()
        service = FakeMessagingService(
            sid=_sid("MG"),
            friendly_name=friendly_name,
            inbound_request_url=inbound_request_url,
            inbound_method=inbound_method,
            status_callback=status_callback,
            use_inbound_webhook_on_number=use_inbound_webhook_on_number,
            sender=sender,
            date_created=now,
            date_updated=now,
        )
        with self._lock:
            self._services[service.sid] = service
        return service.sid

    # -- inspection ------------------------------------------------------------------------

    @property
    def messages(self) -> list[FakeMessage]:
        """Every stored message, oldest first (a snapshot)."""
        with self._lock:
            return list(self._messages.values())

    def message(self, sid: str) -> FakeMessage:
        """The stored message ``sid`` (``KeyError`` if there is none)."""
        with self._lock:
            if sid not in self._messages:
                raise KeyError(f"no message {sid} in the Twilio fake")
            return self._messages[sid]

    @property
    def creates(self) -> list[CreateRequest]:
        """Every create request, refused or not, in arrival order (a snapshot)."""
        with self._lock:
            return list(self._creates)

    @property
    def callbacks_posted(self) -> list[CallbackPost]:
        """Every status callback posted, by ``advance`` or by hand, in order (a snapshot)."""
        with self._lock:
            return list(self._callbacks)

    @property
    def numbers(self) -> list[FakeNumber]:
        with self._lock:
            return list(self._numbers.values())

    @property
    def messaging_services(self) -> list[FakeMessagingService]:
        with self._lock:
            return list(self._services.values())

    # -- helpers for the above -------------------------------------------------------------

    def _script(self, count: int, script: _Script) -> None:
        if count < 1:
            raise ValueError(f"count must be at least 1, not {count}")
        with self._lock:
            self._scripts.extend([script] * count)

    def _next_script(self, to: str) -> _Script:
        """The first script for ``to`` (or for any number), taken off the queue."""
        for index, script in enumerate(self._scripts):
            if script.to is None or script.to == to:
                del self._scripts[index]
                return script
        return _Script()

    def _transition(
        self, sid: str, status: MessageStatus, error_code: int | None
    ) -> FakeMessage | None:
        """The message moved to ``status``, or None when it is not where that step starts
        (queued or accepted for ``sent``, ``sent`` for an outcome)."""
        with self._lock:
            message = self._messages[sid]
            expected = ("queued", "accepted") if status == "sent" else ("sent",)
            if message.status not in expected:
                return None
            now = self._now()
            changes: dict[str, Any] = {"status": status, "date_updated": now}
            if status == "sent":
                changes["date_sent"] = now
                if message.from_ is None:
                    service = self._services.get(message.messaging_service_sid or "")
                    changes["from_"] = service.sender if service else DEFAULT_SENDER
            if error_code is not None:
                changes["error_code"] = error_code
            updated = dataclasses.replace(message, **changes)
            self._messages[sid] = updated
            return updated

    def _callback_url(self, message: FakeMessage) -> str | None:
        if message.status_callback:
            return message.status_callback
        with self._lock:
            service = self._services.get(message.messaging_service_sid or "")
        return service.status_callback if service else None

    def _post_callback(
        self,
        message: FakeMessage,
        status: MessageStatus,
        error_code: int | None,
        url: str,
        signature: str | None,
    ) -> CallbackPost:
        form = {
            "MessageSid": message.sid,
            "SmsSid": message.sid,
            "AccountSid": self.account_sid,
            "From": message.from_ or "",
            "To": message.to,
            "MessageStatus": status,
            "SmsStatus": status,
            "ApiVersion": API_VERSION,
        }
        if message.messaging_service_sid:
            form["MessagingServiceSid"] = message.messaging_service_sid
        if error_code is not None and status in ("undelivered", "failed"):
            form["ErrorCode"] = str(error_code)
        if signature is None:
            # Signed over the exact URL, query string included, as Twilio signs it.
            signature = str(RequestValidator(self.auth_token).compute_signature(url, form))
        request = urllib.request.Request(
            url,
            data=urlencode(form).encode(),
            method="POST",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
                "I-Twilio-Idempotency-Token": secrets.token_hex(16),
                "User-Agent": "TwilioProxy/1.1",
            },
        )
        answered, error = 0, None
        try:
            with urllib.request.urlopen(request, timeout=self.callback_timeout_s) as response:
                answered = response.status
        except urllib.error.HTTPError as e:
            answered = e.code
            e.close()
        except (OSError, http.client.HTTPException) as e:
            # Twilio does not retry a failed status callback either: recorded, not raised.
            error = f"{type(e).__name__}: {e}"
        post = CallbackPost(url=url, form=form, signature=signature, status=answered, error=error)
        with self._lock:
            self._callbacks.append(post)
        return post

    # -- the API, called by the request handler --------------------------------------------

    def _authorised(self, header: str | None) -> bool:
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return hmac.compare_digest(user, self.account_sid) and hmac.compare_digest(
            password, self.auth_token
        )

    def _create_message(self, form: dict[str, str]) -> _Answer:
        received_at = time.time()
        refusal = _invalid_create(form)
        with self._lock:
            to = form.get("To", "")
            if refusal is None and to in self._refusals:
                status, code = self._refusals[to]
                refusal = _error(status, code, _ERROR_MESSAGES.get(code, "Refused").format(to))
            if refusal is not None:
                self._creates.append(
                    CreateRequest(received_at, form, refusal.status, refusal.code, None)
                )
                return refusal
            script = self._next_script(to)
            stored = script.fail is None or script.accepted
            message = self._new_message(form, received_at) if stored else None
            if message is not None:
                self._messages[message.sid] = message
            if script.fail is not None:
                status, code = script.fail
                answer = _error(status, code, _ERROR_MESSAGES.get(code, "Error").format(to))
            else:
                assert message is not None
                answer = _Answer(201, _message_json(message, self.account_sid))
            self._creates.append(
                CreateRequest(
                    received_at,
                    form,
                    answer.status,
                    answer.code,
                    None if message is None else message.sid,
                )
            )
        if script.hang_s:
            # Held outside the lock; stop() ends the wait early.
            self._stopping.wait(script.hang_s)
        return answer

    def _new_message(self, form: dict[str, str], received_at: float) -> FakeMessage:
        created = datetime.fromtimestamp(received_at, UTC) + timedelta(seconds=self.clock_offset_s)
        service = form.get("MessagingServiceSid") or None
        validity = form.get("ValidityPeriod")
        return FakeMessage(
            sid=_sid("SM"),
            to=form["To"],
            from_=form.get("From") or None,
            messaging_service_sid=service,
            body=form["Body"],
            # With a messaging service Twilio answers "accepted": it picks the sender later.
            status="accepted" if service else "queued",
            error_code=None,
            date_created=created,
            date_updated=created,
            date_sent=None,
            status_callback=form.get("StatusCallback") or None,
            validity_period=int(validity) if validity else None,
            received_at=received_at,
        )

    def _fetch_message(self, sid: str, path: str) -> _Answer:
        with self._lock:
            message = self._messages.get(sid)
        if message is None:
            return _not_found(path)
        return _Answer(200, _message_json(message, self.account_sid))

    def _list_messages(self, path: str, query: list[tuple[str, str]]) -> _Answer:
        params = dict(query)
        try:
            matches = _date_sent_filter(params)
        except ValueError as e:
            return _error(400, 20001, str(e))
        with self._lock:
            newest_first = list(reversed(self._messages.values()))
        chosen = [
            m
            for m in newest_first
            if params.get("To") in (None, m.to)
            and params.get("From") in (None, m.from_)
            and matches(m.date_sent)
        ]
        filters = [(k, v) for k, v in query if k in ("To", "From") or k.startswith("DateSent")]
        return _page(
            path,
            "messages",
            chosen,
            filters,
            params,
            lambda m: m.sid,
            lambda m: _message_json(m, self.account_sid),
        )

    def _fetch_account(self) -> _Answer:
        uri = f"/{API_VERSION}/Accounts/{self.account_sid}.json"
        created = _rfc2822(datetime(2020, 1, 1, tzinfo=UTC))
        return _Answer(
            200,
            {
                "sid": self.account_sid,
                "owner_account_sid": self.account_sid,
                "friendly_name": "Hearth (Twilio fake)",
                "status": "active",
                "type": "Full",
                "auth_token": self.auth_token,
                "date_created": created,
                "date_updated": created,
                "uri": uri,
                "subresource_uris": {
                    "messages": uri.replace(".json", "/Messages.json"),
                    "incoming_phone_numbers": uri.replace(".json", "/IncomingPhoneNumbers.json"),
                },
            },
        )

    def _list_numbers(self, path: str, query: list[tuple[str, str]]) -> _Answer:
        params = dict(query)
        wanted = params.get("PhoneNumber")
        with self._lock:
            numbers = list(reversed(self._numbers.values()))
        # Twilio matches a PhoneNumber filter as a pattern; a test only needs the number.
        chosen = [n for n in numbers if wanted is None or wanted in n.phone_number]
        filters = [(k, v) for k, v in query if k == "PhoneNumber"]
        return _page(
            path,
            "incoming_phone_numbers",
            chosen,
            filters,
            params,
            lambda n: n.sid,
            lambda n: _number_json(n, self.account_sid),
        )

    def _update_number(self, sid: str, path: str, form: dict[str, str]) -> _Answer:
        fields = {"SmsUrl": "sms_url", "SmsMethod": "sms_method"}
        fields |= {"StatusCallback": "status_callback", "FriendlyName": "friendly_name"}
        with self._lock:
            number = self._numbers.get(sid)
            if number is None:
                return _not_found(path)
            changes: dict[str, Any] = {
                attr: form[key] for key, attr in fields.items() if key in form
            }
            number = dataclasses.replace(number, **changes, date_updated=self._now())
            self._numbers[sid] = number
        return _Answer(200, _number_json(number, self.account_sid))

    def _service(self, sid: str, path: str, form: dict[str, str] | None) -> _Answer:
        text_fields = {
            "FriendlyName": "friendly_name",
            "InboundRequestUrl": "inbound_request_url",
            "InboundMethod": "inbound_method",
            "StatusCallback": "status_callback",
        }
        with self._lock:
            service = self._services.get(sid)
            if service is None:
                return _not_found(path)
            if form is not None:
                changes: dict[str, Any] = {
                    attr: form[key] for key, attr in text_fields.items() if key in form
                }
                if "UseInboundWebhookOnNumber" in form:
                    flag = form["UseInboundWebhookOnNumber"].lower()
                    changes["use_inbound_webhook_on_number"] = flag == "true"
                service = dataclasses.replace(service, **changes, date_updated=self._now())
                self._services[sid] = service
        return _Answer(200, _service_json(service, self.account_sid))


@pytest.fixture
def twilio_fake() -> Iterator[TwilioFake]:
    """A started ``TwilioFake``, stopped after the test."""
    with TwilioFake() as fake:
        yield fake


# -- the HTTP side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Script:
    hang_s: float = 0.0
    fail: tuple[int, int] | None = None  # (HTTP status, Twilio code)
    accepted: bool = False
    to: str | None = None  # only for creates to this number


@dataclass(frozen=True)
class _Answer:
    status: int
    payload: Mapping[str, object]

    @property
    def code(self) -> int | None:
        code = self.payload.get("code") if self.status >= 400 else None
        return code if isinstance(code, int) else None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # a held answer must not hold up stop()

    def __init__(
        self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler], fake: TwilioFake
    ) -> None:
        super().__init__(address, handler)
        self.fake = fake

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up on a held answer has closed its end: expected, not news.
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


_ACCOUNT = r"/2010-04-01/Accounts/(?P<account>[^/]+)"
_ROUTES: list[tuple[str, re.Pattern[str]]] = [
    ("account", re.compile(_ACCOUNT + r"\.json")),
    ("messages", re.compile(_ACCOUNT + r"/Messages\.json")),
    ("message", re.compile(_ACCOUNT + r"/Messages/(?P<sid>[^/]+)\.json")),
    ("numbers", re.compile(_ACCOUNT + r"/IncomingPhoneNumbers\.json")),
    ("number", re.compile(_ACCOUNT + r"/IncomingPhoneNumbers/(?P<sid>[^/]+)\.json")),
    ("service", re.compile(r"/v1/Services/(?P<sid>[^/]+)")),
]


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    timeout = 10.0  # seconds a silent client may hold a handler thread

    def do_GET(self) -> None:
        self._answer(self._route("GET"))

    def do_POST(self) -> None:
        self._answer(self._route("POST"))

    def log_message(self, format: str, *args: Any) -> None:
        # Quiet: pytest shows stderr of failing tests, and a line per request is noise.
        return

    def _route(self, method: str) -> _Answer:
        fake = self.server.fake
        parts = urlsplit(self.path)
        path, query = parts.path, parse_qsl(parts.query, keep_blank_values=True)
        form = self._form() if method == "POST" else None
        if not fake._authorised(self.headers.get("Authorization")):
            return _error(401, 20003, "Authenticate")
        for name, pattern in _ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            groups = match.groupdict()
            if groups.get("account", fake.account_sid) != fake.account_sid:
                return _not_found(path)
            sid = groups.get("sid", "")
            handler = _dispatch(fake, name, method, path, sid, query, form)
            if handler is not None:
                return handler()
            return _error(405, 20004, "Method not allowed")
        return _not_found(path)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        return dict(parse_qsl(body, keep_blank_values=True))

    def _answer(self, answer: _Answer) -> None:
        body = json.dumps(answer.payload).encode()
        self.send_response(answer.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def _dispatch(
    fake: TwilioFake,
    name: str,
    method: str,
    path: str,
    sid: str,
    query: list[tuple[str, str]],
    form: dict[str, str] | None,
) -> Callable[[], _Answer] | None:
    routes: dict[tuple[str, str], Callable[[], _Answer]] = {
        ("account", "GET"): fake._fetch_account,
        ("messages", "GET"): lambda: fake._list_messages(path, query),
        ("messages", "POST"): lambda: fake._create_message(form or {}),
        ("message", "GET"): lambda: fake._fetch_message(sid, path),
        ("numbers", "GET"): lambda: fake._list_numbers(path, query),
        ("number", "POST"): lambda: fake._update_number(sid, path, form or {}),
        ("service", "GET"): lambda: fake._service(sid, path, None),
        ("service", "POST"): lambda: fake._service(sid, path, form or {}),
    }
    return routes.get((name, method))


# -- Twilio's rules and shapes ---------------------------------------------------------------

_E164 = re.compile(r"\+[1-9]\d{6,14}")
_MESSAGING_SID = re.compile(r"MG[0-9a-fA-F]{32}")
# Twilio's words for the codes the fake answers; "{}" is the To number where it is quoted.
_ERROR_MESSAGES = {
    20003: "Authenticate",
    20404: "The requested resource was not found",
    20429: "Too Many Requests",
    20500: "Internal Server Error",
    20503: "Service Unavailable",
    21211: "The 'To' number {} is not a valid phone number.",
    21212: "The 'From' number is not a valid phone number, shortcode, or alphanumeric sender ID.",
    21602: "Message body is required.",
    21603: "A 'From' phone number is required.",
    21604: "A 'To' phone number is required.",
    21609: "Invalid 'StatusCallback'",
    21610: "Attempt to send to unsubscribed recipient",
    21614: "'To' number is not a valid mobile number",
    21617: "The concatenated message body exceeds the 1600 character limit.",
    90007: "Invalid validity period value",
}


def _invalid_create(form: Mapping[str, str]) -> _Answer | None:
    """Twilio's 400 for a create it would not accept, or None."""
    to, from_ = form.get("To", ""), form.get("From", "")
    service, body = form.get("MessagingServiceSid", ""), form.get("Body", "")
    callback, validity = form.get("StatusCallback", ""), form.get("ValidityPeriod", "")
    problems: list[tuple[bool, int]] = [
        (not to, 21604),
        (not _E164.fullmatch(to), 21211),
        (not body, 21602),
        (len(body) > MAX_BODY, 21617),
        (not from_ and not service, 21603),
        (bool(from_) and not _E164.fullmatch(from_), 21212),
        (bool(service) and not _MESSAGING_SID.fullmatch(service), 20001),
        (bool(callback) and urlsplit(callback).scheme not in ("http", "https"), 21609),
        (bool(validity) and not _in_validity_range(validity), 90007),
    ]
    for failed, code in problems:
        if failed:
            message = _ERROR_MESSAGES.get(code, "Invalid parameter").format(to)
            return _error(400, code, message)
    return None


def _in_validity_range(value: str) -> bool:
    return value.isdigit() and int(value) in VALIDITY_PERIOD_S


def _date_sent_filter(params: Mapping[str, str]) -> Callable[[datetime | None], bool]:
    """The predicate on ``date_sent`` for DateSent, DateSent> and DateSent< (both bounds
    inclusive: on the wire they read ``DateSent>=…``). A message not yet sent matches no
    date filter. ``ValueError`` for a value that is neither a date nor a UTC date-time."""
    bounds = {
        key: _parse_date_sent(key, params[key])
        for key in ("DateSent", "DateSent>", "DateSent<")
        if key in params
    }
    if not bounds:
        return lambda sent: True

    def matches(sent: datetime | None) -> bool:
        if sent is None:
            return False
        for key, bound in bounds.items():
            if key == "DateSent":
                day = bound.date() if isinstance(bound, datetime) else bound
                ok = sent.date() == day
            else:
                # A date-time bound compares to the second, a bare date by day.
                mine, theirs = (
                    (sent.replace(microsecond=0), bound)
                    if isinstance(bound, datetime)
                    else (sent.date(), bound)
                )
                ok = mine >= theirs if key == "DateSent>" else mine <= theirs
            if not ok:
                return False
        return True

    return matches


def _parse_date_sent(key: str, value: str) -> datetime | date:
    try:
        if len(value) == 10:
            return date.fromisoformat(value)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"Invalid {key}: {value!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def _page(
    path: str,
    key: str,
    items: list[_T],
    filters: list[tuple[str, str]],
    params: Mapping[str, str],
    sid_of: Callable[[_T], str],
    render: Callable[[_T], Mapping[str, object]],
) -> _Answer:
    """One page of ``items`` in Twilio's list shape, continuing after ``PageToken``."""
    try:
        size = min(int(params.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
        number = int(params.get("Page", 0))
    except ValueError:
        return _error(400, 20001, "Invalid PageSize or Page")
    if size < 1 or number < 0:
        return _error(400, 20001, "Invalid PageSize or Page")
    sids = [sid_of(item) for item in items]
    token = params.get("PageToken", "")
    if token.startswith("PA") and token[2:] in sids:
        begin = sids.index(token[2:]) + 1  # after the last item of the page before
    elif token.startswith("PB") and token[2:] in sids:
        begin = max(sids.index(token[2:]) - size, 0)  # before the first of the page after
    else:
        begin = number * size
    chosen = items[begin : begin + size]

    def uri(page: int, page_token: str | None) -> str:
        query = [*filters, ("PageSize", str(size)), ("Page", str(page))]
        if page_token:
            query.append(("PageToken", page_token))
        return f"{path}?{urlencode(query)}"

    more = begin + size < len(items)
    return _Answer(
        200,
        {
            key: [render(item) for item in chosen],
            "uri": uri(number, token or None),
            "first_page_uri": uri(0, None),
            "next_page_uri": uri(number + 1, "PA" + sids[begin + size - 1]) if more else None,
            "previous_page_uri": (
                uri(number - 1, "PB" + sids[begin]) if begin > 0 and chosen else None
            ),
            "page": number,
            "page_size": size,
            "start": begin,
            "end": begin + max(len(chosen) - 1, 0),
        },
    )


def _message_json(message: FakeMessage, account_sid: str) -> dict[str, object]:
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{message.sid}"
    return {
        "sid": message.sid,
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "to": message.to,
        "from": message.from_,
        "messaging_service_sid": message.messaging_service_sid,
        "body": message.body,
        "status": message.status,
        "error_code": message.error_code,
        "error_message": None,  # Twilio leaves it null; error_code is the answer
        "num_segments": str(_segments(message.body)),
        "num_media": "0",
        "direction": "outbound-api",
        "date_created": _rfc2822(message.date_created),
        "date_updated": _rfc2822(message.date_updated),
        "date_sent": _rfc2822(message.date_sent) if message.date_sent else None,
        "price": None,
        "price_unit": "USD",
        "uri": uri + ".json",
        "subresource_uris": {"media": uri + "/Media.json"},
    }


def _number_json(number: FakeNumber, account_sid: str) -> dict[str, object]:
    return {
        "sid": number.sid,
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "phone_number": number.phone_number,
        "friendly_name": number.friendly_name,
        "sms_url": number.sms_url,
        "sms_method": number.sms_method,
        "sms_fallback_url": None,
        "sms_fallback_method": "POST",
        "sms_application_sid": None,
        "status_callback": number.status_callback,
        "status_callback_method": "POST",
        "capabilities": {"sms": True, "mms": True, "voice": True, "fax": False},
        "status": "in-use",
        "date_created": _rfc2822(number.date_created),
        "date_updated": _rfc2822(number.date_updated),
        "uri": f"/{API_VERSION}/Accounts/{account_sid}/IncomingPhoneNumbers/{number.sid}.json",
    }


def _service_json(service: FakeMessagingService, account_sid: str) -> dict[str, object]:
    url = f"https://messaging.twilio.com/v1/Services/{service.sid}"
    return {
        "sid": service.sid,
        "account_sid": account_sid,
        "friendly_name": service.friendly_name,
        "inbound_request_url": service.inbound_request_url,
        "inbound_method": service.inbound_method,
        "fallback_url": None,
        "fallback_method": "POST",
        "status_callback": service.status_callback,
        "use_inbound_webhook_on_number": service.use_inbound_webhook_on_number,
        "sticky_sender": True,
        "validity_period": 36000,
        # The messaging API speaks ISO 8601, unlike the 2010 API's RFC 2822.
        "date_created": service.date_created.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "date_updated": service.date_updated.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "url": url,
        "links": {"phone_numbers": f"{url}/PhoneNumbers"},
    }


def _error(status: int, code: int, message: str) -> _Answer:
    return _Answer(
        status,
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
    )


def _not_found(path: str) -> _Answer:
    return _error(404, 20404, f"The requested resource {path} was not found")


def _rfc2822(moment: datetime) -> str:
    """``Thu, 24 Aug 2023 05:01:45 +0000``, as the 2010 API writes every date."""
    return email.utils.format_datetime(moment.astimezone(UTC).replace(microsecond=0))


def _sid(prefix: str) -> str:
    return prefix + secrets.token_hex(16)


# GSM 03.38: one septet each for the basic alphabet, two for the extension characters.
_GSM_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
_GSM_EXTENSION = set("^{}\\[~]|€\f")


def _segments(body: str) -> int:
    """Segments as Twilio counts them: GSM-7 160/153 septets, else UCS-2 70/67 units."""
    if all(ch in _GSM_BASIC or ch in _GSM_EXTENSION for ch in body):
        units = sum(2 if ch in _GSM_EXTENSION else 1 for ch in body)
        single, part = 160, 153
    else:
        units = sum(2 if ord(ch) > 0xFFFF else 1 for ch in body)
        single, part = 70, 67
    return 1 if units <= single else math.ceil(units / part)
