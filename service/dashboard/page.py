"""The dashboard as one HTML page: server-rendered, no JavaScript, one column on a phone.

Every string that comes from a couple file or a reply passes through ``_e`` (``html.escape``
with quotes) before it reaches the page; the rest is literal markup. Jinja2 is not among
Hearth's dependencies, and a page this size does not call for one.

Accessibility: each state has a colour with at least 3:1 against the page (WCAG 1.4.11) and
a shape of its own (filled, outlined, hatched, dashed), a legend in words, a ``<title>`` per
cell and a text summary of each heatmap; text colours are 4.5:1 or more (WCAG AA).
"""

from __future__ import annotations

import html
from collections import defaultdict
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from service.dashboard.view import WEEKS, CellState

if TYPE_CHECKING:
    from service.dashboard.view import (
        Cell,
        DashboardView,
        JournalLine,
        NextOccurrence,
        RitualProgress,
        Subscribe,
    )

__all__ = ["render_page"]

CELL = 16
GAP = 4
LEFT = 34  # room for the weekday labels
TOP = 4
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# fill, stroke, dash: the five states, told apart by shape as well as colour.
_STYLE = {
    CellState.DONE: ('fill="#1a7f37"', 'stroke="#1a7f37"'),
    CellState.SKIPPED: ('fill="#6e7781"', 'stroke="#6e7781"'),
    CellState.MISSED: ('fill="#ffffff"', 'stroke="#b3261e" stroke-width="2"'),
    CellState.PAUSED: ('fill="url(#hatch)"', 'stroke="#0550ae"'),
    CellState.UPCOMING: ('fill="#ffffff"', 'stroke="#57606a" stroke-dasharray="3 2"'),
}
_WORDS = {
    CellState.DONE: "done",
    CellState.SKIPPED: "skipped",
    CellState.MISSED: "missed",
    CellState.PAUSED: "paused",
    CellState.UPCOMING: "upcoming or still open",
}
_HATCH = (
    '<pattern id="hatch" width="4" height="4" patternUnits="userSpaceOnUse" '
    'patternTransform="rotate(45)"><rect width="4" height="4" fill="#ffffff"/>'
    '<rect width="2" height="4" fill="#0550ae"/></pattern>'
)
_CSS = """
:root { color-scheme: light; }
* { box-sizing: border-box; }
body { margin: 0; font: 1rem/1.5 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: #1f2328; background: #ffffff; }
main { max-width: 40rem; margin: 0 auto; padding: 1rem; }
h1 { font-size: 1.5rem; margin: 0.5rem 0; }
h2 { font-size: 1.2rem; margin: 2rem 0 0.5rem; border-bottom: 1px solid #d0d7de; }
h3 { font-size: 1.05rem; margin: 1.25rem 0 0.25rem; }
p, li { margin: 0.25rem 0; }
.muted { color: #57606a; }
.notice { background: #ddf4ff; border: 1px solid #0550ae; padding: 0.5rem 0.75rem; }
svg.heatmap { display: block; width: 100%; max-width: 22rem; height: auto; }
.legend { display: flex; flex-wrap: wrap; gap: 0.25rem 1rem; padding: 0; list-style: none; }
.legend svg { vertical-align: middle; margin-right: 0.3rem; }
.score strong { font-size: 1.1rem; }
ol.next, ol.journal { padding-left: 1.25rem; }
blockquote { margin: 0.25rem 0 0.75rem; padding-left: 0.75rem; border-left: 3px solid #d0d7de;
             white-space: pre-wrap; overflow-wrap: anywhere; }
a.button { display: inline-block; margin: 0.25rem 0.5rem 0.25rem 0; padding: 0.6rem 1rem;
           background: #0550ae; color: #ffffff; text-decoration: none; border-radius: 6px; }
a.button:focus-visible, a:focus-visible { outline: 3px solid #1f2328; outline-offset: 2px; }
code { overflow-wrap: anywhere; font-size: 0.85rem; }
"""


def render_page(view: DashboardView) -> str:
    """The page for ``view``, as text (UTF-8 on the wire)."""
    title = f"{view.viewer}'s rituals with {view.other}"
    parts = [
        "<!doctype html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="robots" content="noindex, nofollow">',
        f"<title>Hearth: {_e(title)}</title>",
        f"<style>{_CSS}</style></head>",
        "<body>",
        # The hatch of paused squares, defined once for every SVG on the page.
        '<svg width="0" height="0" style="position:absolute" aria-hidden="true" focusable="false">'
        f"<defs>{_HATCH}</defs></svg>",
        "<main>",
        f"<header><h1>Hi {_e(view.viewer)}</h1>",
        f'<p class="muted">Your rituals with {_e(view.other)}. Times are in '
        f"{_e(view.zone)}; it is {_e(_when(view.now))}.</p>",
    ]
    if view.paused_until is not None:
        parts.append(
            f'<p class="notice" role="status">Your texts are paused until '
            f"{_e(_when(view.paused_until))}.</p>"
        )
    parts.append("</header>")
    parts += _rituals(view)
    parts += _upcoming(view.upcoming)
    parts += _journal(view.journal)
    parts += _revealed(view)
    parts += _subscribe(view.subscribe)
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def _rituals(view: DashboardView) -> list[str]:
    out = [
        '<section id="rituals" aria-labelledby="rituals-h">',
        f'<h2 id="rituals-h">The last {WEEKS} weeks</h2>',
        '<ul class="legend" aria-label="What the squares mean">',
    ]
    for state in CellState:
        fill, stroke = _STYLE[state]
        out.append(
            f'<li><svg width="14" height="14" viewBox="0 0 16 16" aria-hidden="true">'
            f'<rect x="1" y="1" width="14" height="14" rx="2" {fill} {stroke}/></svg>'
            f"{_WORDS[state]}</li>"
        )
    out.append("</ul>")
    if not view.rituals:
        out.append("<p>No rituals yet.</p>")
    for ritual in view.rituals:
        out += _ritual(view, ritual)
    out.append("</section>")
    return out


def _ritual(view: DashboardView, ritual: RitualProgress) -> list[str]:
    rid = f"r-{_e(ritual.ritual)}"
    p = ritual.progress
    streak = p.streak_text or f"Streak: {p.streak}."
    return [
        f'<article class="ritual" data-ritual="{_e(ritual.ritual)}" aria-labelledby="{rid}">',
        f'<h3 id="{rid}">{_e(ritual.name)}</h3>',
        _heatmap(view, ritual),
        f'<p class="streak" data-streak="{p.streak}">{_e(streak)}</p>',
        f'<p class="score" data-score="{p.score}"><strong>Score: {p.score} out of 100.</strong> '
        f"{_e(p.sentence)}</p>",
        "</article>",
    ]


def _heatmap(view: DashboardView, ritual: RitualProgress) -> str:
    """Twelve week columns, a row per weekday; two occurrences on one day share its square."""
    by_day: dict[tuple[int, int], list[Cell]] = defaultdict(list)
    for cell in ritual.cells:
        week = (cell.start.date() - view.first_week).days // 7
        by_day[(week, cell.start.weekday())].append(cell)
    width = LEFT + WEEKS * (CELL + GAP)
    height = TOP + 7 * (CELL + GAP)
    counts = {s: sum(c.state is s for c in ritual.cells) for s in CellState}
    summary = ", ".join(f"{n} {_WORDS[s]}" for s, n in counts.items() if n) or "nothing scheduled"
    first = view.first_week
    last = first + timedelta(weeks=WEEKS) - timedelta(days=1)
    rid = _e(ritual.ritual)
    out = [
        f'<svg class="heatmap" role="img" viewBox="0 0 {width} {height}" '
        f'aria-labelledby="t-{rid} d-{rid}" data-cells="{len(ritual.cells)}">',
        f'<title id="t-{rid}">{_e(ritual.name)}, {first:%d %b} to {last:%d %b}</title>',
        f'<desc id="d-{rid}">{len(ritual.cells)} scheduled: {_e(summary)}.</desc>',
    ]
    for day in (0, 2, 4, 6):
        y = TOP + day * (CELL + GAP) + CELL - 4
        out.append(
            f'<text x="0" y="{y}" font-size="11" fill="#57606a" aria-hidden="true">'
            f"{DAYS[day]}</text>"
        )
    for (week, day), cells in sorted(by_day.items()):
        x0 = LEFT + week * (CELL + GAP)
        y = TOP + day * (CELL + GAP)
        share = CELL / len(cells)
        for i, cell in enumerate(cells):
            fill, stroke = _STYLE[cell.state]
            x = x0 + i * share
            out.append(
                f'<rect x="{x:g}" y="{y}" width="{share - 1 if len(cells) > 1 else CELL:g}" '
                f'height="{CELL}" rx="2" {fill} {stroke} data-state="{cell.state.value}" '
                f'data-occurrence="{_e(cell.occurrence_id)}">'
                f"<title>{_e(cell.label)}</title></rect>"
            )
    out.append("</svg>")
    return "".join(out)


def _upcoming(upcoming: tuple[NextOccurrence, ...]) -> list[str]:
    out = ['<section id="next" aria-labelledby="next-h">', '<h2 id="next-h">Coming up</h2>']
    if not upcoming:
        out.append("<p>Nothing in the next five weeks.</p>")
    else:
        out.append('<ol class="next">')
        for n in upcoming:
            notes = [w for w, on in (("your turn to plan", n.your_turn), ("moved", n.moved)) if on]
            extra = f" ({', '.join(notes)})" if notes else ""
            out.append(
                f'<li><time datetime="{n.start.isoformat()}">{_e(_when(n.start))}</time>: '
                f"{_e(n.ritual)}{extra}</li>"
            )
        out.append("</ol>")
    out.append("</section>")
    return out


def _journal(lines: tuple[JournalLine, ...]) -> list[str]:
    out = [
        '<section id="journal" aria-labelledby="journal-h">',
        '<h2 id="journal-h">Your journal</h2>',
    ]
    if not lines:
        out.append("<p>What you write back to a check-in is kept here, for you.</p>")
    else:
        out.append('<ol class="journal" reversed>')
        for line in lines:
            out.append(
                f'<li><time datetime="{line.at.isoformat()}">{_e(_when(line.at))}</time>, '
                f"{_e(line.ritual)}<blockquote>{_e(line.note)}</blockquote></li>"
            )
        out.append("</ol>")
    out.append("</section>")
    return out


def _revealed(view: DashboardView) -> list[str]:
    out = [
        '<section id="revealed" aria-labelledby="revealed-h">',
        '<h2 id="revealed-h">Answers revealed to you</h2>',
    ]
    if not view.reveal_enabled:
        out.append(
            f"<p>None of your rituals reveals answers. With <code>reveal: true</code> on a "
            f"check-in, once both of you answer, {_e(view.other)}'s answer is texted to you "
            "and kept here.</p>"
        )
    elif not view.revealed:
        out.append("<p>Nothing revealed yet: answers appear once you have both replied.</p>")
    else:
        out.append('<ol class="journal" reversed>')
        for a in view.revealed:
            out.append(
                f'<li><time datetime="{a.at.isoformat()}">{_e(_when(a.at))}</time>, '
                f"{_e(a.ritual)}, {_e(a.partner)}:<blockquote>{_e(a.note)}</blockquote></li>"
            )
        out.append("</ol>")
    out.append("</section>")
    return out


def _subscribe(subscribe: Subscribe | None) -> list[str]:
    out = [
        '<section id="subscribe" aria-labelledby="subscribe-h">',
        '<h2 id="subscribe-h">Your calendar</h2>',
    ]
    if subscribe is None:
        out.append("<p>None of your rituals go to a calendar.</p>")
    else:
        out += [
            "<p>Subscribe once; your calendar follows every change.</p>",
            f'<p><a class="button" href="{_e(subscribe.webcal)}">Subscribe in your calendar app'
            "</a>",
            f'<a class="button" href="{_e(subscribe.google)}" rel="noreferrer noopener">'
            "Add to Google Calendar</a></p>",
            f'<p class="muted">Or add this address by hand: <code>{_e(subscribe.url)}</code></p>',
        ]
    out.append("</section>")
    return out


def _when(at: datetime) -> str:
    return f"{at:%a %d %b %Y, %H:%M}"


def _e(text: str) -> str:
    return html.escape(text, quote=True)
