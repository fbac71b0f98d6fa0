"""The SMS webhook over real HTTP (uvicorn on 127.0.0.1), with a real Redis queue, a real log
(SQLite, and PostgreSQL when DATABASE_URL is set) and, where it says so, a real Dramatiq
worker handling what the webhook stored."""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlencode

import dramatiq
import httpx
import pytest
import schemathesis
from dramatiq.brokers.redis import RedisBroker
from hypothesis import HealthCheck, given, settings
from redis import Redis
from twilio.request_validator import RequestValidator
from twilio.rest import Client

from service.domain import confirmations as say
from service.domain.clock import ManualClock
from service.domain.delivery import DeliveryStatus
from service.inbound import REPLIES_QUEUE, webhook_token
from service.runtime import Runtime
from service.senders.twilio import TwilioSender
from service.settings import Settings, load_settings
from service.storage import (
    PartnerStates,
    Prompt,
    PromptLog,
    PromptState,
    ReplyLog,
    ReplyState,
    make_engine,
    migrate,
)
from service.web.app import create_app
from tests.databases import BACKENDS, database
from tests.domain.builders import utc
from tests.twilio_mock import ACCOUNT_SID, AUTH_TOKEN, MockTwilioHttpClient
from tests.waiting import outbox_lines, wait_for
from tests.web_server import Serving
from workers import replies as reply_actor

if TYPE_CHECKING:
    from service.replying import ReplyHandler

PUBLIC_URL = "https://hearth.example"  # as behind a proxy: signatures use this, not 127.0.0.1
ALEX = "+15550000001"
WAIT_S = 30.0
COUPLE_YAML = """\
couple: alex-sam
timezone: America/New_York
partners:
  - {name: Alex, phone: "+15550000001"}
  - {name: Sam, phone: "+15550000002"}
rituals:
  - kind: check_in
"""


@dataclass
class Web:
    base: str
    settings: Settings
    replies: ReplyLog
    redis: Redis
    redis_url: str
    clock: ManualClock

    def form(self, body: str = "done", phone: str = ALEX, sid: str | None = None) -> dict[str, str]:
        sid = sid or "SM" + secrets.token_hex(16)
        return {"MessageSid": sid, "AccountSid": "AC" + "1" * 32, "From": phone,
                "To": "+15005550006", "Body": body, "NumMedia": "0"}  # fmt: skip

    def sign(self, form: dict[str, str], token: str | None = None) -> str:
        validator = RequestValidator(token or webhook_token(self.settings))
        return str(validator.compute_signature(PUBLIC_URL + "/sms/inbound", form))

    def post(self, form: dict[str, str], signature: str | None) -> httpx.Response:
        headers = {"X-Twilio-Signature": signature} if signature is not None else {}
        return httpx.post(f"{self.base}/sms/inbound", data=form, headers=headers, timeout=10)

    def queued(self) -> list[str]:
        ids = [i.decode() for i in self.redis.lrange(f"dramatiq:{REPLIES_QUEUE}", 0, -1)]
        raw = self.redis.hmget(f"dramatiq:{REPLIES_QUEUE}.msgs", ids) if ids else []
        return [json.loads(m)["kwargs"]["message_sid"] for m in raw if m is not None]


@pytest.fixture(params=BACKENDS)
def web(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Web]:
    with database(request.param, tmp_path) as db_url:
        config = tmp_path / "couples"
        config.mkdir()
        (config / "alex-sam.yaml").write_text(COUPLE_YAML, encoding="utf-8")
        for name, value in {
            "HEARTH_CONFIG_DIR": str(config),
            "HEARTH_DATA_DIR": str(tmp_path / "var"),
            "REDIS_URL": redis_url,
            "DATABASE_URL": db_url,
            "HEARTH_PUBLIC_URL": PUBLIC_URL,
            "HEARTH_OUTBOX": str(tmp_path / "outbox.jsonl"),
        }.items():
            monkeypatch.setenv(name, value)
        for name in ("TWILIO_ACCOUNT_SID", "TWILIO_AUTH_TOKEN", "TWILIO_FROM"):
            monkeypatch.delenv(name, raising=False)
        migrate(db_url)
        settings = load_settings()
        clock = ManualClock(utc(2026, 3, 2, 12))
        engine = make_engine(db_url)
        redis = Redis.from_url(redis_url)
        with Serving(create_app(settings, redis_url, clock)) as base:
            try:
                yield Web(base, settings, ReplyLog(engine), redis, redis_url, clock)
            finally:
                redis.close()
                engine.dispose()


def test_a_signed_reply_is_stored_and_queued_before_the_answer(web: Web) -> None:
    form = web.form("done")
    response = web.post(form, web.sign(form))
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/xml")
    assert "<Response>" in response.text
    record = web.replies.get(form["MessageSid"])
    assert record is not None
    assert record.state is ReplyState.RECEIVED
    assert record.raw["Body"] == "done"
    assert web.queued() == [form["MessageSid"]]


@pytest.mark.parametrize("how", ["missing", "empty", "other token", "other body", "other url"])
def test_a_forged_or_missing_signature_gets_403_and_changes_nothing(web: Web, how: str) -> None:
    form = web.form("STOP")
    signature = {
        "missing": None,
        "empty": "",
        "other token": web.sign(form, token="f" * 32),
        "other body": web.sign(form | {"Body": "START"}),
        "other url": str(RequestValidator(webhook_token(web.settings)).compute_signature(
            web.base + "/sms/inbound", form)),
    }[how]  # fmt: skip
    response = web.post(form, signature)
    assert response.status_code == 403
    assert web.replies.get(form["MessageSid"]) is None
    assert web.queued() == []


def test_twilio_retrying_the_same_message_sid_stores_and_queues_it_once(web: Web) -> None:
    form = web.form("done")
    for _ in range(3):
        assert web.post(form, web.sign(form)).status_code == 200
    assert web.queued() == [form["MessageSid"]]


def test_malformed_requests_get_clear_4xx_answers(web: Web) -> None:
    form = web.form()
    del form["From"]
    assert web.post(form, web.sign(form)).status_code == 400
    as_json = httpx.post(f"{web.base}/sms/inbound", json=web.form(), timeout=10)
    assert as_json.status_code == 415
    huge = web.form("x" * 70_000)
    assert web.post(huge, web.sign(huge)).status_code == 413


def test_openapi_describes_the_webhook(web: Web) -> None:
    spec = httpx.get(f"{web.base}/openapi.json", timeout=10).json()
    operation = spec["paths"]["/sms/inbound"]["post"]
    form = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
    assert form["schema"]["required"] == ["MessageSid", "From"]
    assert {"200", "403"} <= set(operation["responses"])


def test_a_reply_waits_while_the_worker_is_down_and_is_handled_once_it_runs(
    web: Web, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    form = web.form("zebra kiwi and a long walk")
    assert web.post(form, web.sign(form)).status_code == 200
    time.sleep(0.5)  # nobody is consuming: the reply must simply wait
    record = web.replies.get(form["MessageSid"])
    assert record is not None
    assert record.state is ReplyState.RECEIVED
    handler = Runtime(
        web.settings, clock=web.clock, redis=web.redis, engine=web.replies.engine
    ).reply_handler(republish_feeds=False)
    with Worker(web.redis_url, handler):
        wait_for(
            lambda: (
                (r := web.replies.get(form["MessageSid"])) is not None
                and r.state is ReplyState.CONFIRMED
            ),
            WAIT_S,
            "the worker to handle the stored reply",
        )
    [line] = [json.loads(x) for x in outbox_lines(web.settings.outbox_path)]
    assert line["event_id"] == f"reply/{form['MessageSid']}"
    assert line["body"] == say.NOTHING_OPEN
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert ALEX not in logged, "phone numbers never go to logs"
    assert "zebra" not in logged, "message bodies never go to logs"


def test_the_confirmation_goes_out_through_twilio(web: Web, twilio_mock_url: str) -> None:
    form = web.form("hello there")
    assert web.post(form, web.sign(form)).status_code == 200
    handler = Runtime(
        web.settings, clock=web.clock, redis=web.redis, engine=web.replies.engine
    ).reply_handler(republish_feeds=False)
    client = Client(ACCOUNT_SID, AUTH_TOKEN, http_client=MockTwilioHttpClient(twilio_mock_url))
    handler._sender = TwilioSender(client, "+15005550006")
    record = handler.handle(form["MessageSid"])
    assert record is not None
    after = web.replies.get(form["MessageSid"])
    assert after is not None
    assert after.state is ReplyState.CONFIRMED
    assert after.outcome == "nothing-open"


class Worker:
    """A real Dramatiq worker (in this process) consuming the replies queue."""

    def __init__(self, url: str, handler: ReplyHandler) -> None:
        self.broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
        reply_actor.declare(self.broker, min_backoff_ms=100, max_backoff_ms=1000)
        reply_actor.use(handler)
        self.worker = dramatiq.Worker(self.broker, worker_threads=2, worker_timeout=100)

    def __enter__(self) -> None:
        self.worker.start()

    def __exit__(self, *_: object) -> None:
        self.worker.stop(timeout=10_000)
        self.broker.close()


def test_no_request_whatever_gets_a_500(web: Web) -> None:
    """Schemathesis from /openapi.json, every operation: signed forms (stored for real) and
    unsigned or malformed ones alike; any 5xx fails."""
    api = schemathesis.openapi.from_url(f"{web.base}/openapi.json")
    operations = [result.ok() for result in api.get_all_operations()]
    assert {op.path for op in operations} >= {"/sms/inbound", "/healthz", "/feeds/{token}.ics"}
    statuses: list[int] = []

    for operation in operations:

        @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy())
        def call(case: schemathesis.Case) -> None:
            body = case.body
            if isinstance(body, dict) and body.get("MessageSid"):
                form = {str(k): str(v) for k, v in body.items()}
                case.body = form
                case.headers = {**(case.headers or {}), "X-Twilio-Signature": web.sign(form)}
            response = case.call()
            statuses.append(response.status_code)
            if case.operation.path == "/readyz":  # 503 is its answer while no worker runs
                assert response.status_code in (200, 503), response.text
                return
            assert response.status_code < 500, response.text

        call()
    assert 200 in statuses, "some generated webhooks were signed and stored"
    assert 403 in statuses


# --- delivery receipts: POST /sms/status -------------------------------------------------

SENT_EVENT = "alex-sam/check_in/20260302T2000/prompt/alex"
SENT_SID = "SM" + "c" * 32


def _sent_send(web: Web) -> PromptLog:
    prompts = PromptLog(web.replies.engine)
    at = utc(2026, 3, 3, 1)
    prompt = Prompt(SENT_EVENT, SENT_EVENT.rsplit("/", 2)[0], "alex-sam", "check_in", "alex",
                    "prompt", at)  # fmt: skip
    assert prompts.claim(prompt, at)
    assert prompts.mark_sent(SENT_EVENT, SENT_SID, at)
    return prompts


def _receipt(status: str, code: str = "", sid: str = SENT_SID) -> dict[str, str]:
    form = {"MessageSid": sid, "SmsSid": sid, "AccountSid": "AC" + "1" * 32,
            "From": "+15005550006", "To": ALEX, "MessageStatus": status, "SmsStatus": status,
            "ApiVersion": "2010-04-01"}  # fmt: skip
    return form | ({"ErrorCode": code} if code else {})


def _post_receipt(
    web: Web,
    form: dict[str, str],
    *,
    event: str = SENT_EVENT,
    signed_for: str | None = None,
    token: str | None = None,
) -> httpx.Response:
    query = urlencode({"event": event})
    url = signed_for or f"{PUBLIC_URL}/sms/status?{query}"
    validator = RequestValidator(token or webhook_token(web.settings))
    headers = {"X-Twilio-Signature": str(validator.compute_signature(url, form))}
    return httpx.post(f"{web.base}/sms/status?{query}", data=form, headers=headers, timeout=10)


def test_a_signed_receipt_is_recorded_on_its_send_and_never_goes_back(web: Web) -> None:
    prompts = _sent_send(web)
    for status in ("sent", "delivered", "sent", "queued"):
        response = _post_receipt(web, _receipt(status))
        assert response.status_code == 204, response.text
    record = prompts.get(SENT_EVENT)
    assert record is not None
    assert record.delivery_status is DeliveryStatus.DELIVERED
    assert record.state is PromptState.SENT


def test_an_undelivered_receipt_records_its_code_and_queues_one_resend(web: Web) -> None:
    prompts = _sent_send(web)
    for _ in range(2):
        assert _post_receipt(web, _receipt("undelivered", "30003")).status_code == 204
    record = prompts.get(SENT_EVENT)
    assert record is not None
    assert (record.delivery_status, record.delivery_code) == (DeliveryStatus.UNDELIVERED, 30003)
    resend = prompts.get(SENT_EVENT.replace("/prompt/", "/prompt~resend/"))
    assert resend is not None
    assert resend.retry_at == web.clock.now() + timedelta(minutes=20)
    delayed = [json.loads(m) for m in web.redis.hvals("dramatiq:prompts.DQ.msgs")]
    assert [m["kwargs"]["event_id"] for m in delayed] == [resend.event_id]
    assert delayed[0]["options"]["eta"] > time.time() * 1000 + 19 * 60 * 1000


@pytest.mark.parametrize("how", ["missing", "other token", "other status", "other event"])
def test_a_forged_receipt_gets_403_and_changes_nothing(web: Web, how: str) -> None:
    prompts = _sent_send(web)
    form = _receipt("undelivered", "30005")
    signed = {"other status": _receipt("delivered"), "other event": form}.get(how, form)
    other_url = f"{PUBLIC_URL}/sms/status?{urlencode({'event': SENT_EVENT + 'x'})}"
    query = urlencode({"event": SENT_EVENT})
    if how == "missing":
        response = httpx.post(f"{web.base}/sms/status?{query}", data=form, timeout=10)
    else:
        validator = RequestValidator(
            "f" * 32 if how == "other token" else webhook_token(web.settings)
        )
        url = other_url if how == "other event" else f"{PUBLIC_URL}/sms/status?{query}"
        signature = str(validator.compute_signature(url, signed))
        response = httpx.post(f"{web.base}/sms/status?{query}", data=form,
                              headers={"X-Twilio-Signature": signature}, timeout=10)  # fmt: skip
    assert response.status_code == 403
    record = prompts.get(SENT_EVENT)
    assert record is not None
    assert record.delivery_status is None
    assert PartnerStates(web.replies.engine).get("alex-sam", "alex").unreachable is None


@pytest.mark.parametrize(
    ("form", "event", "says"),
    [
        (_receipt("arrived"), SENT_EVENT, "MessageStatus"),
        (_receipt("failed", "thirty"), SENT_EVENT, "ErrorCode"),
        (_receipt("sent", sid="XX" + "1" * 32), SENT_EVENT, "MessageSid"),
        (_receipt("sent"), "not/an/event", "event"),
    ],
)
def test_a_signed_but_unusable_receipt_gets_400_naming_the_field(
    web: Web, form: dict[str, str], event: str, says: str
) -> None:
    _sent_send(web)
    response = _post_receipt(web, form, event=event)
    assert response.status_code == 400
    assert says in response.json()["detail"]


def test_a_receipt_for_no_known_send_is_answered_and_stores_nothing(web: Web) -> None:
    response = _post_receipt(web, _receipt("delivered"), event=SENT_EVENT)
    assert response.status_code == 204
    assert PromptLog(web.replies.engine).get(SENT_EVENT) is None
