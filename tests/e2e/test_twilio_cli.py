"""``hearth twilio check`` as a user runs it, against the Prism mock of Twilio's 2010 API and
the stateful fake (messaging services, a refused token)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from service.twilio_wiring import mask_sid
from tests.twilio_fake import TwilioFake
from tests.twilio_mock import ACCOUNT_SID

ROOT = Path(__file__).resolve().parents[2]
HEARTH = Path(sys.executable).with_name("hearth")
EXAMPLE_NUMBER = "+18089255327"  # the spec's example number, which Prism always lists
TOKEN = "f00dcafe" * 4  # distinctive, to prove it is never printed


def hearth_twilio(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HEARTH_", "TWILIO_"))}
    return subprocess.run(
        [str(HEARTH), "twilio", *args],
        cwd=ROOT,
        env=base | env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


def _twilio_env(mock_url: str, **more: str) -> dict[str, str]:
    return {
        "TWILIO_ACCOUNT_SID": ACCOUNT_SID,
        "TWILIO_AUTH_TOKEN": TOKEN,
        "TWILIO_FROM": EXAMPLE_NUMBER,
        "HEARTH_TWILIO_API_URL": mock_url,
        "HEARTH_PUBLIC_URL": "https://hearth.example",
        **more,
    }


def test_twilio_check_prints_what_is_right_and_what_to_fix_and_exits_1(
    twilio_mock_url: str,
) -> None:
    result = hearth_twilio("check", **_twilio_env(twilio_mock_url))
    assert result.returncode == 1, result.stderr
    assert result.stdout.splitlines() == [
        "ok: account AC01…ef is active",
        "ok: HEARTH_PUBLIC_URL https://hearth.example is a public https URL",
        "fix: the number +180******** cannot send or receive SMS (it can: mms, voice): "
        "use a number with SMS",
        "fix: the number +180********'s SMS webhook is not set; Hearth expects "
        "https://hearth.example/sms/inbound (POST) (hearth twilio check --fix sets it)",
        "note: the number +180********'s status callback is not set; Hearth names its own, "
        "https://hearth.example/sms/status, on every message it sends",
    ]
    assert result.stderr == ""


def test_twilio_check_fix_says_what_it_changed(twilio_mock_url: str) -> None:
    result = hearth_twilio("check", "--fix", **_twilio_env(twilio_mock_url))
    assert (
        "fixed: the number +180********'s SMS webhook now points to "
        "https://hearth.example/sms/inbound (POST), instead of no webhook"
    ) in result.stdout.splitlines()
    assert result.returncode == 1  # the example number still cannot do SMS


def test_twilio_check_never_prints_the_token_or_whole_number(twilio_mock_url: str) -> None:
    for args in (("check",), ("check", "--fix")):
        result = hearth_twilio(
            *args, **_twilio_env(twilio_mock_url, HEARTH_PUBLIC_URL="http://localhost:8000")
        )
        output = result.stdout + result.stderr
        assert "warn: HEARTH_PUBLIC_URL is http://localhost:8000" in output
        assert TOKEN not in output
        assert EXAMPLE_NUMBER not in output
        assert ACCOUNT_SID not in output


def test_twilio_check_in_console_mode_is_one_error_line_and_exit_2() -> None:
    result = hearth_twilio("check")
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "error: Twilio is not configured (Hearth uses the console sender): set "
        "TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN and TWILIO_FROM"
    ]


def test_twilio_check_with_half_the_credentials_names_the_variables_and_exits_2() -> None:
    result = hearth_twilio("check", TWILIO_ACCOUNT_SID=ACCOUNT_SID)
    assert result.returncode == 2
    assert result.stderr.startswith("error: bad settings: TWILIO_*: TWILIO_ACCOUNT_SID, ")


def test_twilio_check_when_twilio_does_not_answer_is_one_error_line_and_exit_1() -> None:
    result = hearth_twilio("check", **_twilio_env("http://127.0.0.1:1"))
    assert result.returncode == 1
    assert result.stderr.startswith("error: cannot ask Twilio about account AC01…ef")
    assert len(result.stderr.splitlines()) == 1
    assert ACCOUNT_SID not in result.stderr


def test_twilio_check_fix_on_a_messaging_service_then_check_exits_0(
    twilio_fake: TwilioFake,
) -> None:
    sid = twilio_fake.add_messaging_service(inbound_request_url="https://old.example/sms")
    env = _twilio_env(
        twilio_fake.url,
        TWILIO_ACCOUNT_SID=twilio_fake.account_sid,
        TWILIO_AUTH_TOKEN=twilio_fake.auth_token,
        TWILIO_FROM=sid,
    )
    fixed = hearth_twilio("check", "--fix", **env)
    assert fixed.returncode == 0, fixed.stdout + fixed.stderr
    assert f"fixed: the messaging service {mask_sid(sid)}'s SMS webhook now points to " in (
        fixed.stdout
    )
    again = hearth_twilio("check", **env)
    assert again.returncode == 0, again.stdout
    assert not [line for line in again.stdout.splitlines() if line.startswith(("fix", "warn"))]


def test_twilio_check_with_a_wrong_token_says_so_and_exits_2(twilio_fake: TwilioFake) -> None:
    env = _twilio_env(twilio_fake.url, TWILIO_ACCOUNT_SID=twilio_fake.account_sid)
    result = hearth_twilio("check", **env)
    assert result.returncode == 2
    assert result.stderr.startswith(
        "error: Twilio refused TWILIO_ACCOUNT_SID and TWILIO_AUTH_TOKEN"
    )
    assert TOKEN not in result.stderr
