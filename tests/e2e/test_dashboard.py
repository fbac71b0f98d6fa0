"""The dashboard over real HTTP (uvicorn, a seeded SQLite log): what the page holds, the one
404 for every token that opens nothing, escaping, headers, and tokens kept out of logs."""

from __future__ import annotations

import logging
import re
from collections import Counter

import httpx
from typer.testing import CliRunner

from service.cli import app
from service.storage import DashboardTokens
from service.web.logs import RedactFeedTokens
from tests.dashboard_site import EXPECTED, EXPECTED_STREAKS, SAM_NOTE, SCRIPT_NOTE, Site, site

__all__ = ["site"]


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=10)


def test_the_dashboard_shows_each_rituals_cells_streak_journal_and_subscribe_links(
    site: Site,
) -> None:
    response = get(site.url())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    for ritual, expected in EXPECTED.items():
        article = page.split(f'data-ritual="{ritual}"', 1)[1].split("</article>", 1)[0]
        states = Counter(re.findall(r'<rect [^>]*data-state="(\w+)"', article))
        assert dict(states) == expected, ritual
        assert f'data-streak="{EXPECTED_STREAKS[ritual]}"' in article
    assert "Steady: kept 7 of the last 9 weeks." in page
    assert 'name="viewport"' in page
    assert "<script" not in page
    assert SAM_NOTE not in page, "only the viewer's own journal"
    assert 'id="revealed"' in page
    assert 'href="webcal://127.0.0.1:' in page
    assert "https://calendar.google.com/calendar/r?cid=webcal%3A%2F%2F" in page
    assert "paused until Thu 26 Nov 2026, 07:00" in page  # 12:00 UTC in New York


def test_a_journal_entry_is_escaped(site: Site) -> None:
    page = get(site.url()).text
    escaped = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; a &lt;b&gt;bold&lt;/b&gt;"
    assert escaped in page
    assert SCRIPT_NOTE not in page


def test_the_other_partner_sees_their_own_journal_on_their_own_url(site: Site) -> None:
    sam = site.url("sam")
    assert sam != site.url("alex")
    page = get(sam).text
    assert "Hi Sam" in page
    assert "Sam&#x27;s own words" in page
    journal = page.split('id="journal"', 1)[1].split("</section>", 1)[0]
    assert "alert(" not in journal  # Alex's words only where they were revealed to Sam


def test_unknown_rotated_and_malformed_tokens_get_the_same_404(site: Site) -> None:
    old = site.url("sam")
    assert get(old).status_code == 200
    rotated = site.runtime.dashboard_links().rotate("alex-sam", "sam", site.clock.now())
    answers = [
        get(old),
        get(f"{site.base}/c/{'A' * 32}"),
        get(f"{site.base}/c/short"),
        get(f"{site.base}/c/{'%00' * 3}"),
        get(f"{site.base}/c/{old.rsplit('/', 1)[1]}x"),
    ]
    assert {(r.status_code, r.content) for r in answers} == {(404, b"no such page\n")}
    assert get(rotated.url).status_code == 200
    assert get(site.url("alex")).status_code == 200, "the other partner's URL stands"


def test_the_page_forbids_scripts_and_referrers_and_caching(site: Site) -> None:
    headers = get(site.url()).headers
    assert "default-src 'none'" in headers["content-security-policy"]
    assert "script-src" not in headers["content-security-policy"]
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    head = httpx.head(site.url(), timeout=10)
    assert head.status_code == 200
    assert head.content == b""


def test_tokens_are_random_192_bit_and_stored_only_as_hashes(site: Site) -> None:
    url = site.url()
    token = url.rsplit("/", 1)[1]
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", token)
    stored = DashboardTokens(site.runtime.engine).of_couple("alex-sam")["alex"]
    assert token not in (stored.nonce, stored.token_hash)
    assert len(stored.nonce) == 32  # 128 random bits, hex


def test_access_logs_never_show_a_dashboard_token(site: Site) -> None:
    assert any(isinstance(f, RedactFeedTokens) for f in logging.getLogger("uvicorn.access").filters)
    path = site.url().split(site.base, 1)[1]
    record = logging.LogRecord(
        "uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", path + "?x=1", "1.1", 200), None,
    )  # fmt: skip
    RedactFeedTokens().filter(record)
    assert record.getMessage() == '127.0.0.1:5 - "GET /c/*** HTTP/1.1" 200'


def test_hearth_dashboard_urls_and_rotate(site: Site) -> None:
    runner = CliRunner()
    listed = runner.invoke(app, ["dashboard", "urls", "alex-sam"])
    assert listed.exit_code == 0, listed.output
    assert f"alex-sam Alex: {site.url('alex')}" in listed.output
    assert f"alex-sam Sam: {site.url('sam')}" in listed.output
    old = site.url("sam")
    rotated = runner.invoke(app, ["dashboard", "rotate", "alex-sam", "Sam"])
    assert rotated.exit_code == 0, rotated.output
    new = rotated.output.strip().splitlines()[-1].strip()
    assert new == site.url("sam") != old
    assert get(old).status_code == 404
    assert get(new).status_code == 200
    unknown = runner.invoke(app, ["dashboard", "rotate", "alex-sam", "Kim"])
    assert unknown.exit_code == 1


def test_answers_revealed_to_a_partner_show_on_their_page_only(site: Site) -> None:
    sam = httpx.get(site.url("sam"), timeout=10).text
    revealed = sam.split('id="revealed"', 1)[1].split("</section>", 1)[0]
    assert "&lt;script&gt;" in revealed  # Alex's answer, escaped
    assert "Alex" in revealed
    alex = httpx.get(site.url("alex"), timeout=10).text
    mine = alex.split('id="revealed"', 1)[1].split("</section>", 1)[0]
    assert "Nothing revealed yet" in mine
    assert SAM_NOTE not in alex
