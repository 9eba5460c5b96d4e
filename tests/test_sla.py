"""SLA clocks on a clock we move by hand: 7x24, Chinese working days with a holiday and an
adjusted working Saturday, pauses, tiers and breaches."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from collector.incidents.calendar import AlwaysOn, WorkingHours
from collector.incidents.sla import (
    Clock,
    LevelTargets,
    Pause,
    SlaPolicy,
    breached,
    deadline,
    deadlines,
    elapsed,
    tier,
)

SH = ZoneInfo("Asia/Shanghai")
H = timedelta(hours=1)


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SH)


def test_7x24_level_1() -> None:
    p = SlaPolicy()
    c = Clock(opened_at=at(2026, 11, 23, 23, 0), level=1)
    dl = deadlines(c, p, c.opened_at)
    assert dl["respond"] == at(2026, 11, 23, 23, 5)
    assert dl["resolve"] == at(2026, 11, 24, 1, 0)  # through midnight: 7x24
    assert tier(c, p, at(2026, 11, 23, 23, 20)) == 1
    assert tier(c, p, at(2026, 11, 23, 23, 30)) == 2  # 25 % of 2 h
    assert tier(c, p, at(2026, 11, 23, 23, 55)) == 3  # 45 %
    assert breached(c, p, at(2026, 11, 23, 23, 6)) == {"respond"}
    responded = Clock(c.opened_at, 1, responded_at=at(2026, 11, 23, 23, 3))
    assert breached(responded, p, at(2026, 11, 23, 23, 50)) == set()
    assert breached(responded, p, at(2026, 11, 24, 0, 30)) == {"onsite"}
    assert breached(responded, p, at(2026, 11, 24, 1, 1)) == {"onsite", "resolve"}


def test_working_days_skip_national_day_and_count_adjusted_saturday() -> None:
    cal = WorkingHours(SH, time(9), time(18))
    # 2026-09-30 (Wed) 17:00: one working hour left that day; Oct 1-7 are the National Day
    # holiday, Oct 8 (Thu) and Oct 9 (Fri) work; Sat Oct 10 is an adjusted working day.
    start = at(2026, 9, 30, 17, 0)
    assert cal.add(start, 2 * H) == at(2026, 10, 8, 10, 0)
    assert cal.add(start, 1 * H + 9 * H * 2 + H) == at(2026, 10, 10, 10, 0)
    assert cal.between(at(2026, 10, 1, 9), at(2026, 10, 7, 18)) == timedelta(0)
    assert cal.between(at(2026, 10, 10, 9), at(2026, 10, 10, 18)) == 9 * H  # Saturday, working
    assert cal.between(at(2026, 10, 11, 9), at(2026, 10, 11, 18)) == timedelta(0)  # Sunday


def test_level_3_in_working_days_spans_the_holiday() -> None:
    p = SlaPolicy(calendar=WorkingHours(SH))
    c = Clock(opened_at=at(2026, 9, 30, 9, 0), level=3)
    # 3 days of contract time = 72 working hours = 8 working days of 9 h.
    due = deadline(c, p, "resolve", c.opened_at)
    assert due is not None and due.astimezone(SH).date().isoformat() == "2026-10-15"
    assert elapsed(c, p, at(2026, 10, 7, 18)) == 9 * H  # only Sept 30 counted


def test_pause_while_waiting_on_customer() -> None:
    p = SlaPolicy(calendar=AlwaysOn())
    opened = datetime(2026, 11, 23, 8, tzinfo=UTC)
    c = Clock(opened, 2, pauses=(Pause(opened + H, opened + 3 * H, "waiting on customer"),))
    assert elapsed(c, p, opened + 4 * H) == 2 * H
    assert deadline(c, p, "resolve", opened + 4 * H) == opened + 6 * H
    running = Clock(opened, 2, pauses=(Pause(opened + H, None),))
    assert elapsed(running, p, opened + 10 * H) == H
    assert tier(running, p, opened + 10 * H) == 2
    assert breached(running, p, opened + 10 * H) == {"respond"}


def test_custom_targets() -> None:
    p = SlaPolicy(targets={1: LevelTargets(timedelta(minutes=10), None, H, 14 * H)})
    c = Clock(
        datetime(2026, 11, 23, tzinfo=UTC), 1, restored_at=datetime(2026, 11, 23, 0, 50, tzinfo=UTC)
    )
    assert breached(c, p, datetime(2026, 11, 23, 5, tzinfo=UTC)) == {"respond"}
    assert "onsite" not in deadlines(c, p, c.opened_at)


def test_configured_days_cover_a_year_the_table_lacks_and_win_over_it() -> None:
    """The packaged table stops at 2026 here; a contract lists 2027's days itself. Chosen
    dates: Fri 2027-01-01 New Year's Day off, Sun 2027-02-07 an adjusted working day."""
    from collector.config import SlaConfig

    sla = SlaConfig.model_validate(
        {
            "calendar": "workdays-cn",
            "holidays": ["2027-01-01", "2026-12-31"],
            "workdays": ["2027-02-07"],
        }
    )
    cal = sla.policy(SH).calendar
    day = 9 * H
    assert cal.between(at(2027, 1, 1, 0), at(2027, 1, 2, 0)) == timedelta(0)  # holiday (Fri)
    assert cal.between(at(2027, 1, 4, 0), at(2027, 1, 5, 0)) == day  # a plain Monday
    assert cal.between(at(2027, 2, 7, 0), at(2027, 2, 8, 0)) == day  # Sunday, made working
    assert cal.between(at(2027, 2, 6, 0), at(2027, 2, 7, 0)) == timedelta(0)  # plain Saturday
    # Listed days also override a year the table knows (Thu 2026-12-31 is a working day).
    assert cal.between(at(2026, 12, 31, 0), at(2027, 1, 1, 0)) == timedelta(0)
    assert WorkingHours(SH).between(at(2026, 12, 31, 0), at(2027, 1, 1, 0)) == day


def test_a_day_both_off_and_working_is_refused() -> None:
    import pytest
    from pydantic import ValidationError

    from collector.config import SlaConfig

    with pytest.raises(ValidationError, match="2027-01-01 is listed both"):
        SlaConfig.model_validate(
            {"calendar": "workdays-cn", "holidays": ["2027-01-01"], "workdays": ["2027-01-01"]}
        )
