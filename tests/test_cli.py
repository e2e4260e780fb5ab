"""The command line as a Telegraf user reaches for it: version, log levels anywhere,
sample configs that pass `check`, several config files, filters, reload on SIGHUP,
`once` with streaming inputs, and server errors that say what happened."""

from __future__ import annotations

import dataclasses
import signal
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from importlib.metadata import entry_points, version
from pathlib import Path

import pytest

from collector import registry
from tests.helpers import collector, run_collector, stop, wait_until, write_config

REPOSITORY = Path(__file__).resolve().parents[1]


def installed(kind: str) -> list[str]:
    """Plugins a `collector` process finds (not those tests register in this one)."""
    return sorted(ep.name for ep in entry_points(group=f"collector.{kind}"))


def lines_of(path: Path, prefix: str) -> list[str]:
    if not path.exists():
        return []
    return [line for line in path.read_text().splitlines() if line.startswith(prefix)]


def test_version():
    result = run_collector("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"collector {version('instrument-collector')}"


@pytest.mark.parametrize("args", [["--quiet", "check"], ["check", "--quiet"],
                                  ["check", "--log-level", "error"]])
def test_log_options_go_anywhere(tmp_path, args):
    config = write_config(tmp_path, f'[agent]\nstate_dir = "{tmp_path}"\n'
                                    "[[inputs.internal]]\n[[outputs.file]]\n")
    result = run_collector(*args, "-c", str(config))
    assert result.returncode == 0, result.stderr


def test_debug_says_what_was_written_and_what_waits(tmp_path):
    config = write_config(tmp_path, f'[agent]\nstate_dir = "{tmp_path}"\n'
                                    '[[inputs.internal]]\n[[outputs.file]]\nfiles = ["x.lp"]\n')
    result = run_collector("once", "-c", str(config), "--debug")
    assert result.returncode == 0, result.stderr
    assert "DEBUG collector.outputs.file: wrote" in result.stderr
    assert "waiting in the spool" in result.stderr


def test_the_full_sample_config_passes_check(tmp_path):
    sample = run_collector("config")
    assert sample.returncode == 0, sample.stderr
    path = tmp_path / "sample.toml"
    path.write_text(sample.stdout)
    assert run_collector("check", "-c", str(path)).returncode == 0


@pytest.mark.parametrize("kind", ["inputs", "aggregators", "outputs"])
def test_every_option_of_every_plugin_is_in_its_sample_and_it_passes_check(tmp_path, kind):
    others = {"inputs": ["outputs.file"], "outputs": ["inputs.internal"],
              "aggregators": ["inputs.internal", "outputs.file"]}[kind]
    for name in installed(kind):
        sample = run_collector("config", f"{kind}.{name}", *others)
        assert sample.returncode == 0, sample.stderr
        for option in dataclasses.fields(registry.load(kind, name).Config):
            shown = (f"{option.name} = " in sample.stdout  # a value, or a table of them:
                     or f"[[{kind}.{name}.{option.name}]]" in sample.stdout
                     or f"[{kind}.{name}.{option.name}]" in sample.stdout)
            assert shown, f"{kind}.{name}: {option.name}"
        path = tmp_path / f"{kind}-{name}.toml"
        path.write_text(sample.stdout)
        checked = run_collector("check", "-c", str(path))
        assert checked.returncode == 0, f"{kind}.{name}: {checked.stderr}"


def test_an_unknown_plugin_in_config_is_one_line_exit_2():
    result = run_collector("config", "inputs.nope")
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "inputs.nope" in result.stderr


def test_plugins_lists_every_installed_plugin_with_what_it_is():
    result = run_collector("plugins")
    assert result.returncode == 0
    for kind in ("inputs", "aggregators", "outputs"):
        for name in installed(kind):
            assert any(line.split()[0] == name and len(line.split()) > 2
                       for line in result.stdout.splitlines() if line.startswith("  "))


def test_several_configs_and_a_directory_merge_in_order(tmp_path):
    first = tmp_path / "a.toml"
    first.write_text(f'[agent]\nstate_dir = "{tmp_path}"\ninterval = "5s"\n'
                     '[[inputs.internal]]\nalias = "one"\n')
    second = tmp_path / "b.toml"
    second.write_text('[agent]\ninterval = "7s"\n[[outputs.file]]\n')
    result = run_collector("check", "-c", str(first), "-c", str(second))
    assert result.returncode == 0, result.stderr
    assert "inputs: one; outputs: file" in result.stdout
    directory = tmp_path / "conf.d"
    directory.mkdir()
    (directory / "10-inputs.toml").write_text('[[inputs.internal]]\nalias = "two"\n')
    (directory / "20-bad.toml").write_text('[agent]\nintervall = "1s"\n')
    result = run_collector("check", "-c", str(first), "--config-directory", str(directory))
    assert result.returncode == 2
    assert "20-bad.toml: [agent] intervall" in result.stderr, "the error names its file"
    (directory / "20-bad.toml").write_text("[[outputs.file]]\n")
    result = run_collector("check", "-c", str(first), "--config-directory", str(directory))
    assert result.returncode == 0, result.stderr
    assert "inputs: one, two" in result.stdout


def test_config_that_is_a_directory_says_to_use_config_directory(tmp_path):
    result = run_collector("check", "-c", str(tmp_path))
    assert result.returncode == 2 and "use --config-directory" in result.stderr


def test_input_and_output_filters(tmp_path):
    config = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
[[inputs.internal]]
alias = "me"
collect_process = false
[[inputs.se521]]
emulate_when_absent = true
[[outputs.file]]
files = ["a.lp"]
[[outputs.file]]
alias = "second"
files = ["b.lp"]
""")
    printed = run_collector("test", "-c", str(config), "--input-filter", "internal")
    assert printed.returncode == 0, printed.stderr
    assert printed.stdout and all(line.startswith("internal_")
                                  for line in printed.stdout.splitlines())
    once = run_collector("once", "-c", str(config), "--input-filter", "internal",
                         "--output-filter", "file")
    assert once.returncode == 0, once.stderr
    unknown = run_collector("once", "-c", str(config), "--output-filter", "influxdb")
    assert unknown.returncode == 2 and "influxdb not in the config" in unknown.stderr


def test_once_lets_streaming_inputs_deliver(tmp_path):
    config = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
interval = "3s"
[[inputs.raven]]
port = "{tmp_path}/no-such-port"
emulate_when_absent = true
[[outputs.file]]
files = ["out.lp"]
""")
    result = run_collector("once", "-c", str(config))
    assert result.returncode == 0, result.stderr
    assert lines_of(tmp_path / "out.lp", "raven_demand,"), "the meter's pushes were written"


def test_once_says_how_much_stays_spooled(tmp_path):
    config = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
shutdown_timeout = "1s"
[[inputs.internal]]
collect_process = false
[[outputs.influxdb]]
urls = ["http://127.0.0.1:9"]
""")
    result = run_collector("once", "-c", str(config))
    assert result.returncode == 1
    assert "127.0.0.1:9: connection refused (is the server running?)" in result.stderr
    assert "NewConnectionError" not in result.stderr
    assert "provisioning failed" in result.stderr and "start-up failed" not in result.stderr
    assert "still spooled:" in result.stderr and "metrics for influxdb" in result.stderr


class NginxLike(BaseHTTPRequestHandler):
    """Not InfluxDB: a web server answering every request with a 404 page."""

    def do_POST(self) -> None:
        page = (b"<html><head><title>404 Not Found</title><style>body{}</style></head><body>"
                b"<center><h1>404 Not Found</h1></center>" + b"<p>filler</p>" * 200
                + b"<hr><center>nginx/1.22.1</center></body></html>")
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(page)))
        self.end_headers()
        self.wfile.write(page)

    def log_message(self, *args) -> None:
        pass


def test_a_server_that_is_not_influxdb_is_named_briefly_with_the_url(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), NginxLike)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"
    config = write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
shutdown_timeout = "1s"
[[inputs.internal]]
collect_process = false
[[outputs.influxdb]]
urls = ["{url}"]
provision = false
""")
    try:
        result = run_collector("once", "-c", str(config))
    finally:
        server.shutdown()
    assert result.returncode == 1
    (line,) = [line for line in result.stderr.splitlines() if "write failed" in line]
    assert f"{url}/write?db=collector" in line
    assert "HTTP 404 an HTML page (not InfluxDB?): 404 Not Found 404 Not Found" in line
    assert len(line) < 500 and "<" not in line.split("HTTP 404")[1]


def test_sighup_reloads_a_good_config_and_keeps_running_on_a_bad_one(tmp_path):
    def config(name: str, extra: str = "") -> Path:
        return write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
interval = "0.2s"
flush_interval = "0.2s"
{extra}
[[inputs.internal]]
name_override = "{name}"
collect_process = false
[[outputs.file]]
files = ["out.lp"]
""")

    path = config("before")
    log = tmp_path / "log"
    with open(log, "wb") as stderr:
        process = collector("run", "-c", str(path), stderr=stderr)
    try:
        wait_until(lambda: lines_of(tmp_path / "out.lp", "before,"), timeout=20)
        config("broken", extra="intervall = \"1s\"")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: "not reloading" in log.read_text(), timeout=10)
        assert process.poll() is None, "a bad config does not stop it"
        seen = len(lines_of(tmp_path / "out.lp", "before,"))
        wait_until(lambda: len(lines_of(tmp_path / "out.lp", "before,")) > seen, timeout=10)
        config("after")
        process.send_signal(signal.SIGHUP)
        wait_until(lambda: lines_of(tmp_path / "out.lp", "after,"), timeout=20)
    finally:
        assert stop(process) == 0
    assert "intervall" in log.read_text()


def test_the_example_config_is_valid():
    result = run_collector("check", "-c", str(REPOSITORY / "deploy/collector.example.toml"))
    assert result.returncode == 0, result.stderr


def test_the_plain_install_is_covered_by_the_test_install(tmp_path):
    """deploy/run.sh after deploy/test.sh must not reinstall (it did: other stamp file)."""
    (tmp_path / "deploy").mkdir()
    script = tmp_path / "deploy/bootstrap.sh"
    script.write_text((REPOSITORY / "deploy/bootstrap.sh").read_text())
    (tmp_path / "pyproject.toml").write_text("")
    venv_bin = tmp_path / ".venv/bin"
    venv_bin.mkdir(parents=True)
    calls = tmp_path / "python-calls"
    fake = venv_bin / "python"
    fake.write_text(f'#!/bin/sh\necho "$@" >> {calls}\n')
    fake.chmod(0o755)
    (tmp_path / ".venv/.installed-test").touch()
    assert subprocess.run(["bash", str(script)], cwd=tmp_path).returncode == 0
    assert not calls.exists(), "nothing was installed again"
    assert subprocess.run(["bash", str(script), "other"], cwd=tmp_path).returncode == 0
    assert "install" in calls.read_text(), "another extra is installed"
