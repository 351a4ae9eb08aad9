"""The countdown's arithmetic (bot.environments.countdown), the reaper's use of it, and its golden comments."""

from __future__ import annotations

import pytest

from bot.environments import countdown, report
from bot.environments.journal import Action
from bot.environments.reaper import IdleReaper
from bot.environments.states import State
from tests.test_golden import AT, SHA, compare, record, where
from tests.test_reaper import NOW, Environments

H, MIN, DAY = 3600.0, 60.0, 86400.0


def running(**changes):
    return record(state=State.RUNNING, env_sha=SHA, **changes)


# ------------------------------------------------------------------ deadlines

def test_a_running_environment_stops_idle_stop_after_its_last_activity():
    assert countdown.deadlines(running(), AT) == countdown.Deadlines(stop_at=AT + 2 * H)
    assert countdown.deadlines(running(idle_stop=None), AT) == countdown.Deadlines()


@pytest.mark.parametrize("state", [State.STOPPED, State.FAILED])
def test_a_stopped_or_failed_environment_is_deleted_delete_after_its_last_activity(state):
    assert countdown.deadlines(record(state=state), AT) == countdown.Deadlines(delete_at=AT + 7 * DAY)
    assert countdown.deadlines(record(state=state, delete_after=None), AT) == countdown.Deadlines()


@pytest.mark.parametrize("state", [State.NONE, State.QUEUED, State.CREATING, State.STOPPING, State.DELETED])
def test_other_states_have_no_countdown(state):
    assert countdown.deadlines(record(state=state), AT) == countdown.Deadlines()


def test_an_extension_holds_back_only_the_deadline_it_was_given_for():
    kept = running(keep_until=AT + 5 * H, keep_for="stop")
    assert countdown.deadlines(kept, AT).stop_at == AT + 5 * H
    assert countdown.deadlines(kept, AT + 4 * H).stop_at == AT + 6 * H  # used since: activity wins
    # given while stopped: it holds back the deletion, never keeps a woken environment running
    woken = running(keep_until=AT + 8 * DAY, keep_for="delete")
    assert countdown.deadlines(woken, AT).stop_at == AT + 2 * H
    stopped = record(state=State.STOPPED, keep_until=AT + 8 * DAY, keep_for="delete")
    assert countdown.deadlines(stopped, AT).delete_at == AT + 8 * DAY


def test_last_activity_is_the_latest_of_the_record_and_what_was_seen_elsewhere():
    rec = running(last_action=Action("up", "Codertocat", AT, "succeeded"))
    assert countdown.last_active(rec, None) == AT
    assert countdown.last_active(rec, AT + 60) == AT + 60
    assert countdown.last_active(rec, AT - 60) == AT


# ------------------------------------------------------------------ the material-change rule

@pytest.mark.parametrize(("shown", "new", "now", "material"), [
    (AT + 2 * H, AT + 2 * H + 14 * MIN, AT, False),  # 14 min of a 2 h countdown: not worth a write
    (AT + 2 * H, AT + 2 * H + 16 * MIN, AT, True),  # more than 15 min and more than a tenth of 2 h
    (AT + 7 * DAY, AT + 7 * DAY + 10 * H, AT, False),  # a week away: a tenth is 16.8 h
    (AT + 7 * DAY, AT + 7 * DAY + 17 * H, AT, True),
    (AT + 10 * MIN, AT + 2 * H, AT, True),  # used just before the stop: the stop moved far
    (None, AT + 2 * H, AT, True),  # a countdown appears
    (AT + 2 * H, None, AT, True),  # or goes
    (None, None, AT, False),
])
def test_the_comment_is_edited_only_when_a_deadline_moves_materially(shown, new, now, material):
    assert countdown.moved_materially(shown, new, now) is material


# ------------------------------------------------------------------ the warning

def test_the_warning_is_due_in_the_last_quarter_hour_once_per_stop_time():
    rec = running()
    stop = AT + 2 * H
    assert not countdown.warning_due(rec, stop, stop - 16 * MIN)
    assert countdown.warning_due(rec, stop, stop - 14 * MIN)
    assert not countdown.warning_due(rec, stop, stop + 1)  # past it: the stop itself is due
    rec.warned_for = stop
    assert not countdown.warning_due(rec, stop, stop - 5 * MIN)  # warned once for this stop
    later = stop + 2 * H  # used since: a new idle period, a new warning
    assert countdown.warning_due(rec, later, later - 5 * MIN)


def test_a_short_idle_stop_is_warned_of_a_quarter_of_it_before():
    assert countdown.warn_lead(20 * MIN) == 5 * MIN
    assert countdown.warn_lead(2 * H) == 15 * MIN


# ------------------------------------------------------------------ extend

def test_extend_pushes_the_stop_of_a_running_environment_back():
    ext = countdown.extend(running(), AT, AT + 30 * MIN, 2 * H, DAY)
    assert ext == countdown.Extension(keep_until=AT + 4 * H, what="stop", before=AT + 2 * H, capped=False)


def test_extend_pushes_the_deletion_of_a_stopped_environment_back():
    ext = countdown.extend(record(state=State.STOPPED), AT, AT, 2 * H, DAY)
    assert ext is not None and (ext.what, ext.keep_until) == ("delete", AT + 7 * DAY + 2 * H)


def test_extend_never_goes_beyond_the_maximum_past_what_use_now_gives():
    now = AT + 10 * MIN
    first = countdown.extend(running(), AT, now, 20 * H, DAY)
    assert first is not None and not first.capped and first.keep_until == AT + 22 * H
    kept = running(keep_until=first.keep_until, keep_for="stop")
    second = countdown.extend(kept, AT, now, 20 * H, DAY)
    assert second is not None and second.capped and second.keep_until == now + 2 * H + DAY


@pytest.mark.parametrize("rec", [record(state=State.QUEUED), running(idle_stop=None),
                                 record(state=State.STOPPED, delete_after=None)])
def test_extend_has_nothing_to_push_without_a_deadline(rec):
    assert countdown.extend(rec, AT, AT, 2 * H, DAY) is None


@pytest.mark.parametrize(("seconds", "words"), [
    (30, "less than a minute"), (14 * MIN, "about 14 min"), (100 * MIN, "about 1 h 40 min"),
    (2 * H, "about 2 h"), (26 * H, "about 26 h"), (7 * DAY, "about 7 days"),
])
def test_time_left_reads_as_people_say_it(seconds, words):
    assert countdown.about(seconds) == words


# ------------------------------------------------------------------ the reaper keeps the countdown true

class Shown(Environments):
    """The fake environment service, noting the countdown edits the reaper asks for."""

    def __init__(self) -> None:
        super().__init__()
        self.edits: list[tuple[int, float | None]] = []

    def show_countdown(self, ws_id: str, *, warn_for: float | None = None) -> None:
        rec = self.records[ws_id]
        if warn_for is not None:
            rec.warned_for = warn_for
        countdown.stamp(rec, countdown.recorded_activity(rec), NOW)
        self.edits.append((rec.number, warn_for))


def test_the_reaper_warns_once_before_an_idle_stop_and_then_stops_it():
    envs = Shown()
    rec = envs.put(2, State.RUNNING, 2 * H - 10 * MIN, comment_id=7)  # stops in 10 minutes
    countdown.stamp(rec, countdown.recorded_activity(rec), NOW - 60)
    reaper = IdleReaper(envs, clock=lambda: NOW)
    reaper.sweep()
    reaper.sweep()
    assert envs.edits == [(2, NOW + 10 * MIN)] and envs.calls == []
    IdleReaper(envs, clock=lambda: NOW + 11 * MIN).sweep()
    assert envs.edits == [(2, NOW + 10 * MIN)] and envs.calls == [(2, "stop", "devenv-bot (idle)")]


def test_the_reaper_edits_the_comment_only_when_the_countdown_moved_materially():
    envs = Shown()
    rec = envs.put(2, State.RUNNING, 0, comment_id=7)
    countdown.stamp(rec, NOW, NOW)
    seen = {rec.ws_id: NOW + 10 * MIN}
    IdleReaper(envs, clock=lambda: NOW + 10 * MIN, activity=seen.get).sweep()
    assert envs.edits == []  # ten minutes of use: the stop moved 10 min, under the bar
    seen[rec.ws_id] = NOW + 20 * MIN
    IdleReaper(envs, clock=lambda: NOW + 20 * MIN, activity=seen.get).sweep()
    assert envs.edits == [(2, None)]


# ------------------------------------------------------------------ the comment

STOP_AT = AT + 100 * MIN


def extended():
    """Up an hour ago, then ``/devenv extend 2h``: the history has both, the stop is 4 h away."""
    rec = running(last_action=Action("up", "Codertocat", AT - H, "succeeded"), keep_until=AT + 4 * H,
                  keep_for="stop", stop_at=AT + 4 * H, countdown_at=AT)
    rec.last_action = Action("extend", "Codertocat", AT, "succeeded")
    return rec

GOLDEN_CASES = {
    "comment_countdown": running(last_action=Action("up", "Codertocat", AT, "succeeded"),
                                 stop_at=STOP_AT, countdown_at=AT),
    "comment_warning": running(last_action=Action("up", "Codertocat", AT - 106 * MIN, "succeeded"),
                               stop_at=AT + 14 * MIN, countdown_at=AT, warned_for=AT + 14 * MIN),
    "comment_extended": extended(),
    "comment_stopped_countdown": record(state=State.STOPPED, env_sha=SHA, delete_at=AT + 7 * DAY, countdown_at=AT,
                                        last_action=Action("stop", "Codertocat", AT, "succeeded")),
}


@pytest.mark.parametrize("name", sorted(GOLDEN_CASES))
def test_the_comment_with_a_countdown_matches_its_golden_file(name, tmp_path):
    compare(name, report.comment_body(GOLDEN_CASES[name], where(tmp_path)))


def test_the_comment_says_when_it_stops_and_warns_only_when_warned():
    text = report.comment_body(GOLDEN_CASES["comment_countdown"], report.Where())
    assert "**It stops at 2026-11-18 12:46 UTC**, in about 1 h 40 min, unless used" in text
    assert "[!WARNING]" not in text
    warned = report.comment_body(GOLDEN_CASES["comment_warning"], report.Where())
    assert "**Stopping soon:** the environment stops at 2026-11-18 11:20 UTC, in about 14 min" in warned
    assert "`/devenv extend`" in warned


# ------------------------------------------------------------------ the extend section of .github/devenv.yml

def test_the_extend_settings_default_to_2h_within_1d_and_are_checked():
    from bot.repo_settings.schema import RepoSettings, SettingsError
    from bot.repo_settings.validate import parse_settings

    assert (RepoSettings().extend_by, RepoSettings().extend_max) == (2 * 3600, 86400)
    settings = parse_settings("extend:\n  by: 1h\n  max: 8h\n")
    assert (settings.extend_by, settings.extend_max) == (3600, 8 * 3600)
    for text, problem in [("extend: 2h\n", "extend: expected a mapping such as {by: 2h, max: 1d}"),
                          ("extend:\n  by: 2d\n", "extend.by: is longer than extend.max"),
                          ("extend:\n  max: never\n", "extend.max: cannot be never")]:
        with pytest.raises(SettingsError) as error:
            parse_settings(text)
        assert any(p.startswith(problem) for p in error.value.problems), error.value.problems
