"""outputs.sql options, and how "local" time is found while the process runs in UTC."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path

import pytest

from collector import config as config_module
from collector.config import ConfigError
from collector.timezones import ZoneError, local_zone
from tests.helpers import run_collector, write_config

ZONEINFO = Path("/usr/share/zoneinfo")


@pytest.mark.parametrize(("options", "error"), [
    ('driver = "sqlite"\nlayout = "se521"\ntimezone = "Mars/Olympus"',
     "[outputs.sql] timezone: unknown time zone 'Mars/Olympus'"),
    ('driver = "sqlite"\ntimezone = "Europe/Berlin"',
     '[outputs.sql] timezone: only layout = "se521" writes local time'),
    ('driver = "mysql"', "[outputs.sql] username: required with driver = \"mysql\""),
    ('driver = "sqlite"\nretention = "30m"', "[outputs.sql] retention: must be at least 1h"),
    ('driver = "sqlite"\nlayout = "se521"\ntimezone = "UTC"\nse521.columns = { T9 = "tc9" }',
     "[outputs.sql] se521.columns.T9: unknown channel"),
    ('driver = "sqlite"\nlayout = "se521"\ntimezone = "UTC"\nse521.table = "t; DROP"',
     "[outputs.sql] se521.table: 't; DROP' is not a plain SQL name"),
    ('driver = "sqlite"\nlayout = "raven"\nraven.run = ""',
     "[outputs.sql] raven.run: must be 1 to 64 characters"),
])
def test_a_bad_option_is_one_line_naming_the_key(options, error):
    with pytest.raises(ConfigError) as raised:
        config_module.parse(f"[[outputs.sql]]\n{options}\n", "collector.toml")
    assert str(raised.value).startswith(f"collector.toml: {error}")


def test_collector_check_exits_2_on_a_bad_option(tmp_path):
    path = write_config(tmp_path, '[[outputs.sql]]\ndriver = "sqlite"\nlayout = "lines"\n')
    result = run_collector("check", "-c", str(path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "[outputs.sql] layout: must be one of 'generic', 'se521', 'raven'" in result.stderr


def offset_hours(zone, day: str) -> float:
    moment = datetime.datetime.fromisoformat(day).replace(tzinfo=zone)
    return moment.utcoffset().total_seconds() / 3600


def test_local_is_the_tz_the_process_was_started_with(tmp_path):
    """A container sets TZ; the CLI has since pinned TZ=UTC, which must not count."""
    zone = local_zone({"TZ": "Europe/Berlin"}, localtime=tmp_path / "absent")
    assert offset_hours(zone, "2026-07-01T12:00") == 2
    assert offset_hours(local_zone({"TZ": ":America/New_York"}, tmp_path / "absent"),
                        "2026-01-01T12:00") == -5
    assert offset_hours(local_zone({"TZ": ""}, tmp_path / "absent"), "2026-07-01T12:00") == 0


def test_local_is_etc_localtime_when_no_tz_was_set(tmp_path):
    """A systemd service has no TZ: /etc/localtime, a link or (in images) a copy."""
    link = tmp_path / "localtime"
    link.symlink_to(ZONEINFO / "Australia" / "Sydney")
    assert offset_hours(local_zone({}, link), "2026-01-01T12:00") == 11
    copy = tmp_path / "copied"
    shutil.copyfile(ZONEINFO / "Asia" / "Kolkata", copy)
    assert offset_hours(local_zone({}, copy), "2026-01-01T12:00") == 5.5


def test_local_that_cannot_be_known_is_an_error_not_a_guess(tmp_path):
    with pytest.raises(ZoneError, match="not an IANA zone name"):
        local_zone({"TZ": "CET-1CEST,M3.5.0,M10.5.0/3"}, tmp_path / "absent")
    with pytest.raises(ZoneError, match="set timezone"):
        local_zone({}, tmp_path / "absent", timezone_file=tmp_path / "absent")
    (tmp_path / "timezone").write_text("Europe/Lisbon\n")
    zone = local_zone({}, tmp_path / "absent", timezone_file=tmp_path / "timezone")
    assert offset_hours(zone, "2026-07-01T12:00") == 1
