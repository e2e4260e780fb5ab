"""collector.emulation: what ``--link`` may take over, and how emulator CLIs fail."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

import pytest

from collector.emulation import PtyServer
from collector.pty_link import LinkRefused
from plugins.inputs.se521.emulator import Instrument
from tests.helpers import collector, run_collector, stop

VANISHED_PTY = "/dev/pts/999999"
"""A pty number no machine this runs on has open."""


def served_at(link: Path) -> PtyServer:
    return PtyServer(Instrument(), link).start()


def emulate(*args: str) -> tuple[subprocess.Popen, str]:
    """``collector emulate ...`` in the background, once it says where it serves."""
    process = collector("emulate", *args, stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline()


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    return line


def test_link_follows_the_pty_across_disconnects_and_goes_on_close(tmp_path):
    link = tmp_path / "meter"
    server = served_at(link)
    try:
        assert os.readlink(link) == server.tty_path
        server.disconnect()
        assert not os.path.lexists(link)
        server.reconnect()
        assert os.readlink(link) == server.tty_path
    finally:
        server.close()
    assert list(tmp_path.iterdir()) == [], "nothing left behind"


def test_a_regular_file_at_the_link_is_refused_and_kept(tmp_path):
    link = tmp_path / "notes.txt"
    link.write_text("mine")
    with pytest.raises(LinkRefused, match=str(link)):
        served_at(link)
    assert link.read_text() == "mine"


def test_a_symlink_to_a_live_pty_that_no_emulator_made_is_refused(tmp_path):
    master, slave = os.openpty()
    link = tmp_path / "socat-link"
    link.symlink_to(os.ttyname(slave))
    try:
        with pytest.raises(LinkRefused, match=str(link)):
            served_at(link)
        assert os.readlink(link) == os.ttyname(slave)
    finally:
        os.close(master)
        os.close(slave)


def test_a_running_emulators_link_is_refused_even_while_unplugged(tmp_path):
    link = tmp_path / "meter"
    first = served_at(link)
    try:
        with pytest.raises(LinkRefused, match="another emulator"):
            served_at(link)
        assert os.readlink(link) == first.tty_path
        first.disconnect()
        with pytest.raises(LinkRefused, match="another emulator"):
            served_at(link)
        first.reconnect()
        assert os.readlink(link) == first.tty_path
    finally:
        first.close()


def test_a_stale_link_to_a_vanished_pty_is_replaced(tmp_path):
    link = tmp_path / "meter"
    link.symlink_to(VANISHED_PTY)
    server = served_at(link)
    try:
        assert os.readlink(link) == server.tty_path
    finally:
        server.close()


def test_the_link_of_a_killed_emulator_is_taken_over_even_when_its_pty_was_reused(tmp_path):
    link = tmp_path / "meter"
    killed, _ = emulate("se521", "--link", str(link))
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    left = os.readlink(link)
    reused = _open_pty_named(left)
    try:
        server = served_at(link)
        try:
            assert os.readlink(link) == server.tty_path != left
        finally:
            server.close()
    finally:
        for fd in reused:
            os.close(fd)


def _open_pty_named(name: str) -> list[int]:
    """Open ptys until the kernel hands out ``name`` again (it reuses the lowest free
    number); all of them stay open so that the name is another program's pty."""
    opened: list[int] = []
    for _ in range(256):
        master, slave = os.openpty()
        opened += [master, slave]
        if os.ttyname(slave) == name:
            return opened
    for fd in opened:
        os.close(fd)
    raise AssertionError(f"{name} was not handed out again")


def test_close_leaves_a_link_that_no_longer_points_to_its_pty(tmp_path):
    link = tmp_path / "meter"
    server = served_at(link)
    link.unlink()
    link.write_text("replaced by the user")
    server.close()
    assert link.read_text() == "replaced by the user"


# ---------------------------------------------------------------- CLI errors
def test_collector_emulate_refuses_another_emulators_link_in_one_line(tmp_path):
    link = tmp_path / "meter"
    running, announced = emulate("raven", "--link", str(link))
    try:
        assert f"serving {link}" in announced
        line = one_line_error(run_collector("emulate", "se521", "--link", str(link)))
        assert str(link) in line and f"pid {running.pid}" in line
        assert os.path.exists(link), "the running emulator keeps its link"
    finally:
        assert stop(running) == 0
    assert not os.path.lexists(link)


@pytest.mark.parametrize("args, says", [
    (["se521", "--link", "/nonexistent/dir/x"], "/nonexistent/dir/x"),
    (["se521", "--temperatures", "21.5,warm,19,18"], "--temperatures"),
    (["se521", "--temperatures", "21.5,20"], "four"),
    (["se521", "--temperatures", "nan,1,2,3"], "--temperatures"),
    (["se521", "--temperatures", "1,2,3,40000"], "--temperatures"),
    (["se521", "--unit", "K"], "--unit"),
    (["se521", "--no-such-option"], "--no-such-option"),
    (["raven", "--demand-w", "3e9"], "--demand-w"),
    (["raven", "--demand-w", "20000000"], "--demand-w"),
    (["raven", "--solar-peak-w", "-5"], "--solar-peak-w"),
    (["emu2", "--day", "-1"], "--day"),
    (["raven", "--demand-interval", "0"], "--demand-interval"),
    (["emu2", "--summation-interval", "soon"], "--summation-interval"),
    (["raven", "--clock-skew", "x"], "--clock-skew"),
])
def test_emulator_cli_errors_are_one_line_and_exit_2(args, says):
    assert says in one_line_error(run_collector("emulate", *args))
