"""``hearth status`` as an operator runs it: the real command on a real SQLite log."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from service.capabilities import service_secret
from service.deliveries import Receipt, Receipts
from service.storage import PartnerStates, Prompt, PromptLog, make_engine, migrate
from tests.couple_texts import VALID

HEARTH = Path(sys.executable).with_name("hearth")
NOW = datetime.now(UTC).replace(microsecond=0)


def _hearth(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("HEARTH_", "TWILIO_")) and k != "DATABASE_URL"}  # fmt: skip
    env |= {
        "HEARTH_CONFIG_DIR": str(tmp_path / "couples"),
        "HEARTH_DATA_DIR": str(tmp_path / "var"),
    }
    return subprocess.run([str(HEARTH), *args], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)  # fmt: skip


def _send(prompts: PromptLog, couple: str, partner: str, ritual: str, hours_ago: int) -> str:
    at = NOW - timedelta(hours=hours_ago)
    event_id = f"{couple}/{ritual}/{at:%Y%m%dT%H%M}/prompt/{partner}"
    prompt = Prompt(event_id, event_id.rsplit("/", 2)[0], couple, ritual, partner, "prompt", at)
    assert prompts.claim(prompt, at)
    assert prompts.mark_sent(event_id, f"SM{hours_ago:032x}", at, segments=1)
    return event_id


def test_status_tells_each_partner_s_standing_and_last_sends(tmp_path: Path) -> None:
    couples = tmp_path / "couples"
    couples.mkdir()
    (couples / "alex-and-sam.yaml").write_text(VALID, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'var' / 'hearth.sqlite3'}"
    migrate(url)
    engine = make_engine(url)
    try:
        prompts = PromptLog(engine)
        # The CLI fingerprints numbers with the data dir's secret, as the service does.
        partners = PartnerStates(engine, number_key=service_secret(None, tmp_path / "var"))
        receipts = Receipts(prompts, partners, None)
        delivered = _send(prompts, "alex-and-sam", "alex", "check_in", 3)
        receipts.record(Receipt.from_form(delivered, {
            "MessageSid": f"SM{3:032x}", "MessageStatus": "delivered"}), NOW)  # fmt: skip
        landline = _send(prompts, "alex-and-sam", "sam", "check_in", 2)
        receipts.record(Receipt.from_form(landline, {
            "MessageSid": f"SM{2:032x}", "MessageStatus": "failed", "ErrorCode": "30006",
            "To": "+4915112340002"}), NOW)  # fmt: skip
        _send(prompts, "alex-and-sam", "sam", "gratitude", 1)
    finally:
        engine.dispose()

    result = _hearth(tmp_path, "status")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "alex-and-sam"
    assert lines[1] == "  alex: receiving"
    assert lines[2].split()[3:7] == ["check_in", "prompt", "sent", "delivered"]
    assert lines[2].endswith("1 seg")
    sam = lines.index(next(line for line in lines if line.startswith("  sam: ")))
    assert lines[sam].startswith("  sam: unreachable since ")
    assert "error 30006" in lines[sam]
    assert lines[sam + 1].startswith("    last problem: ")
    assert "landline" in lines[sam + 1]
    assert "gratitude" in lines[sam + 2]  # newest first
    assert "+49151" not in result.stdout  # numbers are never printed

    unknown = _hearth(tmp_path, "status", "nobody")
    assert unknown.returncode == 1
    assert "no couple 'nobody'" in unknown.stderr
