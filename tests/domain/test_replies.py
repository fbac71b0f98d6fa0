import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from service.domain.replies import (
    HELP_WORDS,
    OPT_IN_WORDS,
    OPT_OUT_WORDS,
    PAUSE_DEFAULT,
    PAUSE_MAX,
    PAUSE_MIN,
    SNOOZE_DEFAULT,
    SNOOZE_MAX,
    SNOOZE_MIN,
    Reply,
    Verb,
    WhenNotUnderstood,
    parse_reply,
    parse_when,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
# Wednesday 4 March 2026, 18:00; the occurrence being moved starts at 19:30 the same day.
NOW = datetime(2026, 3, 4, 18, 0, tzinfo=BERLIN)
CURRENT = datetime(2026, 3, 4, 19, 30, tzinfo=BERLIN)

# The GSM 03.38 basic alphabet, written out here rather than imported so the test is an
# independent check: a reply outside it costs a UCS-2 segment of 70 characters.
GSM7_BASIC = set(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
SLUG = re.compile(r"[a-z0-9][a-z0-9_-]*")


def _sms_ready(message: str) -> bool:
    return 0 < len(message) <= 160 and set(message) <= GSM7_BASIC


def _when(spec: str, now: datetime = NOW, current: datetime = CURRENT) -> datetime:
    return parse_when(spec, now, current)


def _refusal(spec: str, now: datetime = NOW, current: datetime = CURRENT) -> str:
    with pytest.raises(WhenNotUnderstood) as caught:
        parse_when(spec, now, current)
    message = str(caught.value)
    assert _sms_ready(message), message
    return message


# --- keyword lists -------------------------------------------------------------------------


def test_keyword_lists_are_twilios_defaults() -> None:
    twilio_opt_out = {"stop", "stopall", "unsubscribe", "cancel", "end", "quit", "revoke", "optout"}
    assert sorted(OPT_OUT_WORDS) == sorted(twilio_opt_out)
    assert sorted(OPT_IN_WORDS) == ["start", "unstop", "yes"]
    assert sorted(HELP_WORDS) == ["help", "info"]


@pytest.mark.parametrize("word", sorted(OPT_OUT_WORDS))
@pytest.mark.parametrize("dress", ["{}", "{} ", "  {}!", "{}.", "'{}'", "🛑 {}", "{} 🙏"])
@pytest.mark.parametrize("case", [str.lower, str.upper, str.title])
def test_every_opt_out_word_alone_is_stop(word: str, dress: str, case: object) -> None:
    assert callable(case)
    assert parse_reply(dress.format(case(word))) == Reply(Verb.STOP)


@pytest.mark.parametrize("body", ["Stop all", "STOP ALL", "opt out", "Opt-Out", "opt_out"])
def test_opt_out_spelled_apart_is_still_stop_because_leaving_is_the_safe_mistake(
    body: str,
) -> None:
    assert parse_reply(body) == Reply(Verb.STOP)


@pytest.mark.parametrize("word", sorted(OPT_IN_WORDS))
@pytest.mark.parametrize("dress", ["{}", " {} ", "{}!", "{}!!!", "{} 😊"])
def test_every_opt_in_word_alone_is_start(word: str, dress: str) -> None:
    assert parse_reply(dress.format(word)) == Reply(Verb.START)
    assert parse_reply(dress.format(word.upper())) == Reply(Verb.START)


@pytest.mark.parametrize("body", ["help", "HELP", "Help?", "info", "INFO.", " help "])
def test_help_words_alone_are_help(body: str) -> None:
    assert parse_reply(body) == Reply(Verb.HELP)


@pytest.mark.parametrize(
    "body",
    [
        "stop it now",
        "stop texting me about dishes",
        "STOP PLEASE",
        "please cancel",
        "cancel tonight",
        "end of a long day",
        "quit my job today!",
        "start cooking at 7",
        "yes I did it",
        "yes!! loved it",
        "help me choose a film",
        "info about tonight?",
        "#dishes stop",
        "stop #dishes",
        "yes #gratitude",
    ],
)
def test_carrier_keywords_count_only_as_the_whole_message_like_twilio(body: str) -> None:
    reply = parse_reply(body)
    assert reply.verb is Verb.TEXT
    assert reply.problem is None


@pytest.mark.parametrize("body", ["yes", "Yes", "YES!", "yes 👍", "yes."])
def test_yes_opts_in_and_never_means_done(body: str) -> None:
    assert parse_reply(body).verb is Verb.START


@pytest.mark.parametrize("body", ["ok", "OK!", "okay", "k", "yep", "sure", "👍"])
def test_casual_agreement_is_text_not_done(body: str) -> None:
    assert parse_reply(body).verb is Verb.TEXT


# --- DONE and SKIP -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "done",
        "DONE",
        "Done.",
        "  done!! ",
        "done!",
        "DONE 🎉",
        "did it",
        "Did it!",
        "did   it",
        "finished",
        "Finished!",
        "completed",
        "complete",
        "COMPLETE.",
        "✅",
        "✔️",
        "✔",
        "✔︎",
        "☑️",
        "☑",
        "✓",
        "✅✅✅",
        "🎉 done",
        "(done)",
        "ＤＯＮＥ",  # full width, as some keyboards send it; NFKC folds it
    ],
)
def test_done_spellings_are_done(body: str) -> None:
    reply = parse_reply(body)
    assert reply.verb is Verb.DONE
    assert reply.problem is None
    assert reply.ritual is None


@pytest.mark.parametrize(
    ("body", "note"),
    [
        ("done", ""),
        ("Done - loved it", "loved it"),
        ("done, we laughed a lot!", "we laughed a lot!"),
        ("DONE: Sam made pancakes 🥞", "Sam made pancakes 🥞"),
        ("did it... finally", "finally"),
        ("finished.   Long walk", "Long walk"),
        ("✅ walked by the river", "walked by the river"),
        ("✅ done, lovely", "lovely"),
        ("✔️Lovely evening", "Lovely evening"),
        ("DONE 🎉", "🎉"),
        ("completed the list", "the list"),
    ],
)
def test_done_keeps_the_rest_as_the_note(body: str, note: str) -> None:
    assert parse_reply(body) == Reply(Verb.DONE, text=note)


@pytest.mark.parametrize(
    "body",
    ["doneish", "donezo", "did italian food", "finishedness", "undone", "loved it ✅", "I'm done"],
)
def test_done_must_be_a_whole_leading_word(body: str) -> None:
    assert parse_reply(body).verb is Verb.TEXT


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("skip", ""),
        ("SKIP!", ""),
        ("Skip - Sam is sick", "Sam is sick"),
        ("skipping, too tired", "too tired"),
        ("pass", ""),
        ("Pass. Long day", "Long day"),
        ("skip 🤒", "🤒"),
    ],
)
def test_skip_spellings_keep_the_reason(body: str, reason: str) -> None:
    assert parse_reply(body) == Reply(Verb.SKIP, text=reason)


@pytest.mark.parametrize("body", ["skipped dinner", "passed my exam!", "passing by", "skips"])
def test_skip_must_be_a_whole_leading_word(body: str) -> None:
    assert parse_reply(body).verb is Verb.TEXT


# --- SNOOZE and PAUSE ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "span"),
    [
        ("snooze", SNOOZE_DEFAULT),
        ("Snooze!", SNOOZE_DEFAULT),
        ("later", SNOOZE_DEFAULT),
        ("Later!", SNOOZE_DEFAULT),
        ("remind me later", SNOOZE_DEFAULT),
        ("Remind me later!", SNOOZE_DEFAULT),
        ("snooze 30m", timedelta(minutes=30)),
        ("snooze 30 min", timedelta(minutes=30)),
        ("snooze 30 mins", timedelta(minutes=30)),
        ("snooze 45 minutes", timedelta(minutes=45)),
        ("snooze 2h", timedelta(hours=2)),
        ("snooze 2 hr", timedelta(hours=2)),
        ("snooze 2 hrs", timedelta(hours=2)),
        ("snooze 2 hours", timedelta(hours=2)),
        ("SNOOZE 1H30M", timedelta(hours=1, minutes=30)),
        ("snooze 1h 30m", timedelta(hours=1, minutes=30)),
        ("snooze 90", timedelta(minutes=90)),
        ("snooze for 20m", timedelta(minutes=20)),
        ("snooze an hour", timedelta(hours=1)),
        ("snooze 5m", SNOOZE_MIN),
        ("snooze 12h", SNOOZE_MAX),
        ("snooze 720", SNOOZE_MAX),
        ("later 1h", timedelta(hours=1)),
        ("remind me later 2h", timedelta(hours=2)),
        ("snooze, 15m.", timedelta(minutes=15)),
    ],
)
def test_snooze_reads_its_span_or_takes_the_default(body: str, span: timedelta) -> None:
    assert parse_reply(body) == Reply(Verb.SNOOZE, span=span)


@pytest.mark.parametrize(
    "body",
    ["snooze 4m", "snooze 4", "snooze 0", "snooze 13h", "snooze 721", "snooze 2d", "later 1w",
     "snooze 90s", "snooze blorp", "snooze 1.5h", "snooze 2h please", "snooze " + "9" * 50],
)  # fmt: skip
def test_snooze_out_of_bounds_or_unreadable_says_what_to_send(body: str) -> None:
    reply = parse_reply(body)
    assert reply == Reply(Verb.SNOOZE, problem=reply.problem)
    assert reply.problem == "Snooze takes 5m to 12h, such as SNOOZE 30m or SNOOZE 2h."
    assert _sms_ready(reply.problem)


@pytest.mark.parametrize(
    "body", ["later tonight we talk about it", "Later I'll call you ❤️", "remind me later what?"]
)
def test_later_opening_a_sentence_is_text_not_a_broken_snooze(body: str) -> None:
    assert parse_reply(body) == Reply(Verb.TEXT, text=body)


@pytest.mark.parametrize(
    ("body", "span"),
    [
        ("pause", PAUSE_DEFAULT),
        ("PAUSE.", PAUSE_DEFAULT),
        ("pause 3d", timedelta(days=3)),
        ("pause 3 days", timedelta(days=3)),
        ("pause 2w", timedelta(weeks=2)),
        ("pause 2 weeks", timedelta(weeks=2)),
        ("pause 1 week", timedelta(weeks=1)),
        ("pause a week", timedelta(weeks=1)),
        ("pause for 12h", timedelta(hours=12)),
        ("pause 1h", PAUSE_MIN),
        ("pause 90d", PAUSE_MAX),
        ("pause 1w2d", timedelta(days=9)),
    ],
)
def test_pause_reads_its_span_or_takes_the_default(body: str, span: timedelta) -> None:
    assert parse_reply(body) == Reply(Verb.PAUSE, span=span)


@pytest.mark.parametrize(
    "body", ["pause 30m", "pause 59m", "pause 91d", "pause 14w", "pause 3", "pause forever"]
)
def test_pause_out_of_bounds_or_unreadable_says_what_to_send(body: str) -> None:
    reply = parse_reply(body)
    problem = "Pause takes 1h to 90d, such as PAUSE 3d or PAUSE 2w."
    assert reply == Reply(Verb.PAUSE, problem=problem)


@pytest.mark.parametrize("body", ["resume", "RESUME!", "Resume.", "unpause", "  Unpause 🙂 "])
def test_resume_is_a_whole_message(body: str) -> None:
    assert parse_reply(body) == Reply(Verb.RESUME)


def test_resume_inside_a_sentence_is_text() -> None:
    assert parse_reply("resume tomorrow please").verb is Verb.TEXT


# --- MOVE ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "spec"),
    [
        ("move sat 20:00", "sat 20:00"),
        ("MOVE tomorrow 19:30", "tomorrow 19:30"),
        ("Move: Friday 8pm", "Friday 8pm"),
        ("reschedule to sun 18:00", "to sun 18:00"),
        ("move  sat   8pm!", "sat 8pm!"),
    ],
)
def test_move_keeps_the_spec_unparsed(body: str, spec: str) -> None:
    assert parse_reply(body) == Reply(Verb.MOVE, text=spec)


@pytest.mark.parametrize("body", ["move", "MOVE!", "reschedule", "move #date_night", "move ..."])
def test_move_without_a_time_asks_for_one(body: str) -> None:
    reply = parse_reply(body)
    assert reply.verb is Verb.MOVE
    assert reply.problem == "Say when, such as MOVE sat 20:00 or MOVE tomorrow 19:30."
    assert _sms_ready(reply.problem)


# --- selectors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("DONE #gratitude loved it", Reply(Verb.DONE, text="loved it", ritual="gratitude")),
        ("#gratitude done loved it", Reply(Verb.DONE, text="loved it", ritual="gratitude")),
        ("done loved it #Gratitude", Reply(Verb.DONE, text="loved it", ritual="gratitude")),
        ("#date_night skip", Reply(Verb.SKIP, ritual="date_night")),
        ("skip #date_night", Reply(Verb.SKIP, ritual="date_night")),
        ("#date-night MOVE sat 20:00", Reply(Verb.MOVE, text="sat 20:00", ritual="date-night")),
        ("MOVE sat 20:00 #date-night", Reply(Verb.MOVE, text="sat 20:00", ritual="date-night")),
        ("#check_in snooze 1h", Reply(Verb.SNOOZE, span=timedelta(hours=1), ritual="check_in")),
        ("pause 2w #phone_free", Reply(Verb.PAUSE, span=timedelta(weeks=2), ritual="phone_free")),
        ("#phone_free resume", Reply(Verb.RESUME, ritual="phone_free")),
        ("help #date_night", Reply(Verb.HELP, ritual="date_night")),
        ("✅ #gratitude", Reply(Verb.DONE, ritual="gratitude")),
        ("#Gratitude: Sam's laugh", Reply(Verb.TEXT, text="Sam's laugh", ritual="gratitude")),
        ("#gratitude - Sam's laugh", Reply(Verb.TEXT, text="Sam's laugh", ritual="gratitude")),
        ("Sam's laugh #gratitude.", Reply(Verb.TEXT, text="Sam's laugh.", ritual="gratitude")),
        ("we #date laughed", Reply(Verb.TEXT, text="we laughed", ritual="date")),
        ("done #gratitude, loved it", Reply(Verb.DONE, text="loved it", ritual="gratitude")),
        ("#gratitude", Reply(Verb.TEXT, ritual="gratitude")),
        ("#2nd_date done", Reply(Verb.DONE, ritual="2nd_date")),
    ],
)
def test_a_tag_anywhere_selects_the_ritual(body: str, expected: Reply) -> None:
    assert parse_reply(body) == expected


@pytest.mark.parametrize(
    "body", ["you're my #1 ❤️", "C# is hard", "issue#42", "## heading", "#", "# done?"]
)
def test_things_that_are_not_tags_select_nothing(body: str) -> None:
    assert parse_reply(body).ritual is None


def test_only_the_first_tag_selects_and_later_ones_stay_in_the_text() -> None:
    assert parse_reply("#gratitude loved it #blessed") == Reply(
        Verb.TEXT, text="loved it #blessed", ritual="gratitude"
    )


# --- free text -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ("Loved tonight ❤️🔥", "Loved tonight ❤️🔥"),
        ("  Sam   made\n\npancakes 🥞  ", "Sam made pancakes 🥞"),
        ("I'm grateful for YOU!!!", "I'm grateful for YOU!!!"),
        ("👨‍👩‍👧 family day", "👨‍👩‍👧 family day"),
        ("", ""),
        ("   ", ""),
        ("!!!", "!!!"),
        ("ok", "ok"),
        ("tab\there\x00", "tab here"),
    ],
)
def test_free_text_is_kept_as_written_with_whitespace_collapsed(body: str, text: str) -> None:
    assert parse_reply(body) == Reply(Verb.TEXT, text=text)


def test_bodies_are_cut_to_1600_characters() -> None:
    reply = parse_reply("a" * 5000)
    assert reply == Reply(Verb.TEXT, text="a" * 1600)


def test_lone_surrogates_become_replacement_characters_not_errors() -> None:
    reply = parse_reply("done \ud83d oops")
    assert reply == Reply(Verb.DONE, text="\ufffd oops")
    reply.text.encode("utf-8")


# --- parse_when: forms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "wall"),
    [
        # days, with the occurrence's own time kept
        ("today", datetime(2026, 3, 4, 19, 30)),
        ("tonight", datetime(2026, 3, 4, 19, 30)),
        ("tomorrow", datetime(2026, 3, 5, 19, 30)),
        ("tmrw", datetime(2026, 3, 5, 19, 30)),
        ("sat", datetime(2026, 3, 7, 19, 30)),
        ("saturday", datetime(2026, 3, 7, 19, 30)),
        ("Saturday", datetime(2026, 3, 7, 19, 30)),
        ("thu", datetime(2026, 3, 5, 19, 30)),
        ("thurs", datetime(2026, 3, 5, 19, 30)),
        ("tues", datetime(2026, 3, 10, 19, 30)),
        ("wed", datetime(2026, 3, 4, 19, 30)),  # today, still ahead
        ("next sat", datetime(2026, 3, 14, 19, 30)),
        ("next wed", datetime(2026, 3, 11, 19, 30)),
        ("this fri", datetime(2026, 3, 6, 19, 30)),
        ("2026-03-20", datetime(2026, 3, 20, 19, 30)),
        ("mar 20", datetime(2026, 3, 20, 19, 30)),
        ("20 mar", datetime(2026, 3, 20, 19, 30)),
        ("march 20", datetime(2026, 3, 20, 19, 30)),
        ("20th of march", datetime(2026, 3, 20, 19, 30)),
        ("april 1st", datetime(2026, 4, 1, 19, 30)),
        ("may 2 2026", datetime(2026, 5, 2, 19, 30)),
        # times, on the occurrence's own day
        ("20:00", datetime(2026, 3, 4, 20, 0)),
        ("8pm", datetime(2026, 3, 4, 20, 0)),
        ("8 PM", datetime(2026, 3, 4, 20, 0)),
        ("8:30pm", datetime(2026, 3, 4, 20, 30)),
        ("8.30pm", datetime(2026, 3, 4, 20, 30)),
        ("8:30 p.m.", datetime(2026, 3, 4, 20, 30)),
        ("20h", datetime(2026, 3, 4, 20, 0)),
        ("20h30", datetime(2026, 3, 4, 20, 30)),
        ("23:59", datetime(2026, 3, 4, 23, 59)),
        # both, in either order, with the words people put between
        ("sat 20:00", datetime(2026, 3, 7, 20, 0)),
        ("20:00 sat", datetime(2026, 3, 7, 20, 0)),
        ("tomorrow 19:30", datetime(2026, 3, 5, 19, 30)),
        ("8pm tomorrow", datetime(2026, 3, 5, 20, 0)),
        ("tomorrow at 7:15am", datetime(2026, 3, 5, 7, 15)),
        ("to Friday at 8pm", datetime(2026, 3, 6, 20, 0)),
        ("on sat, 18:00", datetime(2026, 3, 7, 18, 0)),
        ("sat @ 9pm", datetime(2026, 3, 7, 21, 0)),
        ("noon sat", datetime(2026, 3, 7, 12, 0)),
        ("sat midday", datetime(2026, 3, 7, 12, 0)),
        ("sat 8:00", datetime(2026, 3, 7, 8, 0)),  # 24-hour clock: 08:00
        ("sat 00:30", datetime(2026, 3, 7, 0, 30)),
        ("sat 12am", datetime(2026, 3, 7, 0, 0)),
        ("sat 12pm", datetime(2026, 3, 7, 12, 0)),
        ("2026-03-20 20:00", datetime(2026, 3, 20, 20, 0)),
        ("SAT 8PM!", datetime(2026, 3, 7, 20, 0)),
        ("ｓａｔ ２０：００", datetime(2026, 3, 7, 20, 0)),
    ],
)
def test_parse_when_reads_each_form(spec: str, wall: datetime) -> None:
    assert _when(spec) == wall


@pytest.mark.parametrize("spec", ["dec 5", "5 dec", "december 5", "Dec 5th", "5th of December"])
def test_month_and_day_are_read_in_either_order(spec: str) -> None:
    now = datetime(2026, 11, 20, 9, 0, tzinfo=BERLIN)
    assert _when(spec, now, now) == datetime(2026, 12, 5, 9, 0)


def test_parse_when_answers_naive_wall_time_at_minute_precision() -> None:
    current = datetime(2026, 3, 4, 19, 30, 45, 123, tzinfo=BERLIN)
    wall = _when("tomorrow", NOW, current)
    assert wall == datetime(2026, 3, 5, 19, 30)
    assert wall.tzinfo is None


def test_omitted_day_keeps_the_occurrences_date_not_todays() -> None:
    friday = datetime(2026, 3, 6, 19, 30, tzinfo=BERLIN)
    assert _when("21:00", NOW, friday) == datetime(2026, 3, 6, 21, 0)


def test_a_current_given_in_another_zone_is_read_in_nows_zone() -> None:
    in_utc = datetime(2026, 3, 4, 18, 30, tzinfo=ZoneInfo("UTC"))  # 19:30 in Berlin
    assert _when("tomorrow", NOW, in_utc) == datetime(2026, 3, 5, 19, 30)


def test_omitted_time_keeps_the_occurrences_wall_time() -> None:
    current = datetime(2026, 3, 6, 7, 5, tzinfo=BERLIN)
    assert _when("sun", NOW, current) == datetime(2026, 3, 8, 7, 5)


def test_a_wall_time_in_a_dst_gap_is_returned_as_is_for_the_caller_to_resolve() -> None:
    now = datetime(2026, 3, 5, 12, 0, tzinfo=NEW_YORK)
    assert _when("2026-03-08 2:30am", now, now) == datetime(2026, 3, 8, 2, 30)


@pytest.mark.parametrize(
    ("spec", "wall"),
    [
        ("wed 9am", datetime(2026, 3, 11, 9, 0)),  # Wednesday 09:00 has passed today
        ("wed 18:00", datetime(2026, 3, 11, 18, 0)),  # exactly now is not after now
        ("wednesday 17:59", datetime(2026, 3, 11, 17, 59)),
        ("wed 18:01", datetime(2026, 3, 4, 18, 1)),  # still ahead: no roll
    ],
)
def test_a_passed_weekday_rolls_forward_a_week(spec: str, wall: datetime) -> None:
    assert _when(spec) == wall


@pytest.mark.parametrize(
    "spec", ["today 9am", "tonight 17:00", "17:00", "9am", "2026-03-01", "mar 1", "2026-03-04 8am"]
)
def test_a_passed_date_or_time_is_refused(spec: str) -> None:
    assert _refusal(spec).startswith("That time has passed.")


@pytest.mark.parametrize("spec", ["2026-05-04 20:00", "may 4", "2027-01-01", "dec 24"])
def test_more_than_60_days_ahead_is_refused(spec: str) -> None:
    assert "60 days" in _refusal(spec)


def test_sixty_days_ahead_is_still_fine() -> None:
    assert _when("2026-05-03 17:59") == datetime(2026, 5, 3, 17, 59)


def test_leap_day_is_read_in_a_leap_year() -> None:
    now = datetime(2028, 2, 27, 10, 0, tzinfo=BERLIN)
    assert _when("feb 29", now, now) == datetime(2028, 2, 29, 10, 0)
    assert _when("29 feb 8pm", now, now) == datetime(2028, 2, 29, 20, 0)
    assert _when("2028-02-29 20:00", now, now) == datetime(2028, 2, 29, 20, 0)


@pytest.mark.parametrize("spec", ["2027-02-29", "feb 29 2027", "feb 30", "apr 31", "2026-13-01"])
def test_dates_that_do_not_exist_are_refused(spec: str) -> None:
    assert _refusal(spec).startswith("There is no ")


def test_a_month_and_day_means_the_next_one_so_january_follows_december() -> None:
    now = datetime(2026, 12, 28, 10, 0, tzinfo=BERLIN)
    assert _when("jan 3 20:00", now, now) == datetime(2027, 1, 3, 20, 0)


def test_a_month_and_day_gone_by_lately_is_refused_as_passed_not_as_next_years() -> None:
    now = datetime(2026, 12, 10, 10, 0, tzinfo=BERLIN)
    assert _refusal("dec 5", now, now).startswith("That time has passed.")


# --- parse_when: refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "quoted"),
    [
        ("blorp", "'blorp'"),
        ("sat blorp", "'sat blorp'"),
        ("in a bit", "'in a bit'"),
        ("whenever suits you both best", "'whenever suits you b...'"),
        ("funday 20:00", "'funday'"),
        ("sat 🎉 20:00", "'sat ?'"),
    ],
)
def test_unreadable_specs_quote_what_was_not_understood(spec: str, quoted: str) -> None:
    message = _refusal(spec)
    assert quoted in message
    assert "MOVE sat 20:00" in message


def test_the_example_from_the_brief_reads_as_promised() -> None:
    assert _refusal("blorp") == (
        "I couldn't read 'blorp'. Try MOVE sat 20:00 or MOVE tomorrow 19:30."
    )


@pytest.mark.parametrize("spec", ["", "   ", "to", "at ,", "🎉"])
def test_an_empty_spec_asks_for_a_time(spec: str) -> None:
    assert _refusal(spec) == "Say when, such as MOVE sat 20:00 or MOVE tomorrow 19:30."


@pytest.mark.parametrize("spec", ["12/5", "5/12/2026", "12/05"])
def test_slashed_dates_are_refused_as_ambiguous(spec: str) -> None:
    message = _refusal(spec)
    assert "day or month first" in message
    assert "2026-03-11" in message  # an ISO example a week ahead


@pytest.mark.parametrize("spec", ["midnight", "sat midnight"])
def test_midnight_is_refused_as_ambiguous(spec: str) -> None:
    assert _refusal(spec).startswith("Midnight")


@pytest.mark.parametrize(
    ("spec", "hint"),
    [("sat 8", "8am or 8pm"), ("8 tomorrow", "8am or 8pm"), ("sat 20", "20:00")],
)
def test_a_bare_hour_is_refused_with_a_hint(spec: str, hint: str) -> None:
    assert hint in _refusal(spec)


@pytest.mark.parametrize("spec", ["sat 25:00", "sat 13pm", "sat 0am", "sat 20:61"])
def test_impossible_clock_times_are_refused(spec: str) -> None:
    assert "is not a time of day" in _refusal(spec)


def test_far_future_now_does_not_overflow() -> None:
    now = datetime(9999, 12, 31, 12, 0, tzinfo=BERLIN)
    for spec in ["tomorrow", "next sat", "sat 9am", "jan 3"]:
        _refusal(spec, now, now)


# --- properties ----------------------------------------------------------------------------

# Every code point, with lone surrogates, control and format characters and emoji made
# common: st.characters() alone yields a surrogate in about one string in a hundred.
_ANY_CHAR = st.one_of(
    st.characters(exclude_categories=()), st.characters(categories=["Cs", "Cc", "Cf", "So"])
)
_WORDS = st.sampled_from(
    [*sorted(OPT_OUT_WORDS | OPT_IN_WORDS | HELP_WORDS),
       "done", "did it", "✅", "✔️", "skip", "pass", "snooze", "later", "remind me later",
       "pause", "resume", "move", "#date_night", "#", "30m", "2h", "90", "3d", "sat", "20:00",
       "8pm", "tomorrow", "next", "feb 29", "12/5", "midnight", "🎉", "\ufe0f", "\u200d",
       "\ud83d", "\x00", "\n", "!", "-", ".", " "]
)  # fmt: skip
_BODIES = st.one_of(
    st.text(),
    st.text(alphabet=_ANY_CHAR),
    st.lists(st.one_of(_WORDS, st.text(alphabet=_ANY_CHAR, max_size=3)), max_size=8).map(" ".join),
    st.text(alphabet=_ANY_CHAR, min_size=1, max_size=8).map(lambda s: s * 400),
    st.just("\ufdfa" * 1600),  # NFKC expands this one character to eighteen
)


@settings(max_examples=300, deadline=None)
@given(_BODIES)
def test_parse_reply_never_raises_and_answers_a_clean_reply(body: str) -> None:
    reply = parse_reply(body)
    assert isinstance(reply, Reply)
    assert isinstance(reply.verb, Verb)
    assert reply.text == reply.text.strip()
    assert len(reply.text) <= 1600
    reply.text.encode("utf-8")  # no lone surrogates reach a store
    assert reply.ritual is None or SLUG.fullmatch(reply.ritual)
    if reply.problem is not None:
        assert _sms_ready(reply.problem)
        assert reply.span is None
    if reply.verb is Verb.SNOOZE and reply.problem is None:
        assert reply.span is not None
        assert SNOOZE_MIN <= reply.span <= SNOOZE_MAX
    if reply.verb is Verb.PAUSE and reply.problem is None:
        assert reply.span is not None
        assert PAUSE_MIN <= reply.span <= PAUSE_MAX


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from(sorted(OPT_OUT_WORDS)),
    st.text(alphabet=" !.?🛑🙏", max_size=3),
    st.text(alphabet=" !.?🛑🙏", max_size=3),
    st.booleans(),
)
def test_a_dressed_opt_out_word_alone_is_always_stop(
    word: str, before: str, after: str, upper: bool
) -> None:
    assert parse_reply(before + (word.upper() if upper else word) + after).verb is Verb.STOP


_ZONES = st.sampled_from([BERLIN, NEW_YORK, ZoneInfo("UTC"), ZoneInfo("Pacific/Chatham")])
_WALLS = st.one_of(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1)),
    st.datetimes(),  # the calendar's very ends, where adding a day overflows
)


@st.composite
def _now_and_current(draw: st.DrawFn) -> tuple[datetime, datetime]:
    """Mostly an occurrence a few days either side of now, as MOVE meets it; sometimes any."""
    now_wall = draw(_WALLS)
    offset = draw(st.timedeltas(min_value=timedelta(days=-3), max_value=timedelta(days=14)))
    try:
        near = now_wall + offset
    except OverflowError:
        near = now_wall
    return now_wall, draw(st.one_of(st.just(near), _WALLS))


_SPECS = st.one_of(
    st.text(),
    st.text(alphabet=_ANY_CHAR),
    st.lists(st.one_of(_WORDS, st.text(max_size=3)), max_size=5).map(" ".join),
    st.lists(
        st.sampled_from(
            ["today", "tonight", "tomorrow", "next", "sat", "thurs", "dec", "feb", "29", "5th",
             "2028-02-29", "2026-12-05", "20:00", "8pm", "8:30", "20h", "noon", "at", "to", "of",
             "a.m.", "12/5", "99:99", "0am", "13pm"]
        ),
        max_size=4,
    ).map(" ".join),
    st.text(alphabet=_ANY_CHAR, min_size=1, max_size=8).map(lambda s: s * 400),
    # well-formed specs, so the answering path is walked as often as the refusing one
    st.tuples(
        st.sampled_from(["", "today", "tomorrow", "sat", "next sun", "thurs", "dec 5", "feb 29"]),
        st.sampled_from(["", "20:00", "8pm", "7:30am", "noon", "23h15", "0:05"]),
        st.booleans(),
    ).map(lambda t: f"{t[1]} {t[0]}" if t[2] else f"{t[0]} {t[1]}"),
)  # fmt: skip


@settings(max_examples=300, deadline=None)
@given(_SPECS, _now_and_current(), _ZONES)
def test_parse_when_answers_a_wall_time_or_refuses_politely(
    spec: str, walls: tuple[datetime, datetime], tz: ZoneInfo
) -> None:
    now_wall, current_wall = walls
    now, current = now_wall.replace(tzinfo=tz), current_wall.replace(tzinfo=tz)
    try:
        wall = parse_when(spec, now, current)
    except WhenNotUnderstood as refusal:
        assert _sms_ready(str(refusal)), str(refusal)
        return
    assert wall.tzinfo is None
    assert wall.second == wall.microsecond == 0
    assert now_wall < wall <= now_wall + timedelta(days=60)


@pytest.mark.parametrize(
    ("body", "ritual", "note"),
    [
        ("DONE yesterday", None, ""),
        ("done yesterday", None, ""),
        ("Done, yesterday!", None, ""),
        ("DONE YESTERDAY.", None, ""),
        ("✅ yesterday", None, ""),
        ("did it yesterday - lovely walk", None, "lovely walk"),
        ("#gratitude done yesterday", "gratitude", ""),
        ("#Gratitude: Done Yesterday!!", "gratitude", ""),
        ("done yesterday #check-in", "check-in", ""),
    ],
)
def test_done_yesterday_is_a_backfill(body: str, ritual: str | None, note: str) -> None:
    assert parse_reply(body) == Reply(Verb.DONE, text=note, ritual=ritual, yesterday=True)


@pytest.mark.parametrize(
    ("body", "verb", "text"),
    [
        ("done yesterdays", Verb.DONE, "yesterdays"),
        ("done - it was better than yesterday", Verb.DONE, "it was better than yesterday"),
        ("yesterday done", Verb.TEXT, "yesterday done"),
        ("skip yesterday", Verb.SKIP, "yesterday"),
    ],
)
def test_yesterday_only_backfills_right_after_done(body: str, verb: Verb, text: str) -> None:
    assert parse_reply(body) == Reply(verb, text=text)
