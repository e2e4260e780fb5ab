"""Config: Telegraf's shape, ${VAR} substitution, secret files, and one-line errors."""

import pytest

from collector import config
from collector.units import Secret
from tests.helpers import run_collector, write_config

OUTPUT = '[[outputs.influxdb]]\nurls = ["http://127.0.0.1:1"]\n'
MALFORMED = [
    ("syntax", "[agent\ninterval = 1", "", "invalid TOML"),
    ("unknown section", "[agnet]\ninterval = \"1s\"", "[agnet]", "unknown section"),
    ("unknown agent key", "[agent]\nintervall = \"1s\"", "[agent] intervall", "unknown key"),
    ("wrong type", "[agent]\nmetric_batch_size = \"many\"", "[agent] metric_batch_size",
     "expected an integer"),
    ("bad duration", "[agent]\ninterval = \"10 parsecs\"", "[agent] interval", "not a duration"),
    ("zero interval", "[[inputs.internal]]\ninterval = \"0s\"", "[inputs.internal] interval",
     "greater than zero"),
    ("bad enum", "[agent]\nprecision = \"minutes\"", "[agent] precision", "must be one of"),
    ("unknown plugin", "[[inputs.nope]]", "[inputs.nope]", "unknown input plugin"),
    ("unknown plugin key", "[[outputs.influxdb]]\nurl = \"http://x\"", "[outputs.influxdb] url",
     "unknown key"),
    ("missing required", OUTPUT + "[[outputs.influxdb.retention_policies]]\nname = \"raw\"",
     "[outputs.influxdb] retention_policies[0].duration", "required key is missing"),
    ("missing env var", "[[outputs.influxdb]]\nurls = [\"${NO_SUCH_VAR_X}\"]",
     "[outputs.influxdb] urls[0]", "NO_SUCH_VAR_X is not set"),
    ("short retention", OUTPUT + "[[outputs.influxdb.retention_policies]]\nname = \"raw\"\n"
     "duration = \"30m\"", "[outputs.influxdb] retention_policies[0].duration", "at least 1h"),
    ("downsampling target", OUTPUT + "[[outputs.influxdb.retention_policies]]\nname = \"raw\"\n"
     "duration = \"1d\"\n[[outputs.influxdb.downsampling]]\nsource = \"raw\"\ntarget = \"yr\"\n"
     "interval = \"1m\"", "[outputs.influxdb] downsampling[0].target", "not in retention"),
    ("secret file", OUTPUT + "password_file = \"/nonexistent/pw\"",
     "[outputs.influxdb] password_file", "cannot read secret file"),
    ("credentials in url", "[[outputs.influxdb]]\nurls = [\"http://u:hunter2@h:8086\"]",
     "[outputs.influxdb] urls[0]", "credentials"),
    ("duplicate alias", "[[inputs.internal]]\nalias = \"a\"\n[[inputs.internal]]\nalias = \"a\"",
     "[inputs.internal #2] alias", "used twice"),
    ("tag not a string", "[global_tags]\nsite = 3", "[global_tags] site", "expected a string"),
    ("cq into its source", OUTPUT + "[[outputs.influxdb.retention_policies]]\nname = \"raw\"\n"
     "duration = \"1d\"\n[[outputs.influxdb.downsampling]]\nsource = \"raw\"\ntarget = \"raw\"\n"
     "interval = \"1m\"", "[outputs.influxdb] downsampling[0].target", "its own source"),
    ("resample shorter than interval", OUTPUT + "[[outputs.influxdb.retention_policies]]\n"
     "name = \"raw\"\nduration = \"1d\"\n[[outputs.influxdb.retention_policies]]\n"
     "name = \"y\"\nduration = \"INF\"\n[[outputs.influxdb.downsampling]]\nsource = \"raw\"\n"
     "target = \"y\"\ninterval = \"1h\"\nresample_for = \"30m\"",
     "[outputs.influxdb] downsampling[0].resample_for", "at least the interval"),
    ("bad time zone", OUTPUT + "[[outputs.influxdb.retention_policies]]\nname = \"raw\"\n"
     "duration = \"1d\"\n[[outputs.influxdb.retention_policies]]\nname = \"y\"\n"
     "duration = \"INF\"\n[[outputs.influxdb.downsampling]]\nsource = \"raw\"\ntarget = \"y\"\n"
     "interval = \"1h\"\ntime_zone = \"Mars/Olympus\"",
     "[outputs.influxdb] downsampling[0].time_zone", "not an IANA time zone"),
    ("misspelt key", "[agent]\nintervall = \"1s\"", "[agent] intervall",
     "did you mean 'interval'"),
    ("empty config", "", "", "no inputs"),
    ("outputs without inputs", OUTPUT, "", "no inputs"),
    ("inputs without outputs", "[[inputs.internal]]", "", "no outputs"),
]


@pytest.mark.parametrize("text, where, what", [case[1:] for case in MALFORMED],
                         ids=[case[0] for case in MALFORMED])
def test_malformed_config_exits_2_with_one_clear_line(tmp_path, text, where, what):
    path = write_config(tmp_path, text)
    result = run_collector("check", "-c", str(path))
    assert result.returncode == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and where in lines[0] and what in lines[0], lines[0]
    assert "hunter2" not in result.stderr


def test_at_least_ten_malformed_cases():
    assert len(MALFORMED) >= 10


def test_unreadable_config_file_exits_2(tmp_path):
    result = run_collector("check", "-c", str(tmp_path / "missing.toml"))
    assert result.returncode == 2 and "cannot read config" in result.stderr


def test_env_substitution_defaults_and_typed_values(tmp_path, monkeypatch):
    monkeypatch.setenv("BATCH", "250")
    monkeypatch.setenv("SITE", "roof")
    monkeypatch.delenv("UNSET_INTERVAL", raising=False)
    parsed = config.parse(
        '[agent]\ninterval = "${UNSET_INTERVAL:-5s}"\nmetric_batch_size = "${BATCH}"\n'
        '[global_tags]\nsite = "${SITE}-${UNSET:-north}"\n[[inputs.internal]]\n', "t.toml")
    assert parsed.agent.interval == 5.0
    assert parsed.agent.metric_batch_size == 250
    assert parsed.global_tags == {"site": "roof-north"}


def test_secret_from_file_never_prints(tmp_path):
    secret = tmp_path / "token"
    secret.write_text("s3cr3t\n")
    parsed = config.parse(f'[[outputs.influxdb]]\ntoken_file = "{secret}"\n', "t.toml")
    token = parsed.outputs[0].config.token
    assert token == Secret("s3cr3t")
    assert "s3cr3t" not in repr(parsed.outputs[0].config) and "s3cr3t" not in str(token)


def test_config_path_from_environment(tmp_path):
    path = write_config(tmp_path, "[[inputs.internal]]\nalias = \"mine\"\n[[outputs.file]]\n")
    result = run_collector("check", env={"COLLECTOR_CONFIG": str(path)})
    assert result.returncode == 0 and "inputs: mine" in result.stdout


def test_embedded_defaults_are_valid(monkeypatch):
    monkeypatch.delenv("COLLECTOR_CONFIG", raising=False)
    parsed = config.load(None)
    assert [s.name for s in parsed.inputs] == ["internal", "se521", "raven"]
    assert [s.name for s in parsed.outputs] == ["file", "sql"]
