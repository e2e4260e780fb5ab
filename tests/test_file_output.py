"""outputs.file: what it writes, and rotation keeping a bounded archive."""

import pytest

from collector import config as config_module
from tests.helpers import output_plugin, run_collector

LINE = b"m,probe=T1 celsius=21.5 1795236060000000000\n"


def written(plugin, batches: int, lines: int = 10) -> bytes:
    payload = LINE * lines
    for _ in range(batches):
        assert plugin.write(payload, lines).written == lines
    plugin.close()
    return payload * batches


def test_rotation_keeps_the_newest_archives_and_loses_no_line_between_them(tmp_path):
    plugin = output_plugin('[[outputs.file]]\nfiles = ["lp/metrics.lp"]\n'
                           'rotation_max_size = "1KiB"\nrotation_max_archives = 3\n', tmp_path)
    first = written(plugin, 4)  # 1,760 bytes: one rotation
    archives = sorted((tmp_path / "lp").glob("metrics.*.lp"))
    assert len(archives) == 1 and archives[0].stat().st_size >= 1024
    assert archives[0].read_bytes() + (tmp_path / "lp/metrics.lp").read_bytes() == first

    plugin = output_plugin('[[outputs.file]]\nfiles = ["lp/metrics.lp"]\n'
                           'rotation_max_size = "1KiB"\nrotation_max_archives = 3\n', tmp_path)
    written(plugin, 40)
    archives = sorted((tmp_path / "lp").glob("metrics.*.lp"))
    assert len(archives) == 3, "older archives deleted"
    assert all(1024 <= archive.stat().st_size < 1024 + 440 for archive in archives)
    assert (tmp_path / "lp/metrics.lp").stat().st_size < 1024


def test_minus_one_keeps_every_archive_and_zero_never_rotates(tmp_path):
    keep_all = output_plugin('[[outputs.file]]\nfiles = ["a.lp"]\nrotation_max_size = 1000\n'
                             'rotation_max_archives = -1\n', tmp_path)
    everything = written(keep_all, 30)
    archives = sorted(tmp_path.glob("a.*.lp"))
    assert len(archives) == len(everything) // 1320  # a rotation every third batch
    assert b"".join(a.read_bytes() for a in archives) + (tmp_path / "a.lp").read_bytes() \
        == everything

    never = output_plugin('[[outputs.file]]\nfiles = ["b.lp"]\n', tmp_path)
    assert (tmp_path / "b.lp").exists() is False
    written(never, 30)
    assert not list(tmp_path.glob("b.*.lp")) and (tmp_path / "b.lp").stat().st_size == 13_200


def test_files_not_its_own_archives_are_never_deleted(tmp_path):
    (tmp_path / "metrics.backup.lp").write_text("mine\n")
    (tmp_path / "metrics.2020-01-01.lp").write_text("mine too\n")
    plugin = output_plugin('[[outputs.file]]\nfiles = ["metrics.lp"]\nrotation_max_size = 100\n'
                           'rotation_max_archives = 0\n', tmp_path)
    written(plugin, 5)
    assert sorted(p.name for p in tmp_path.glob("metrics.*")) == [
        "metrics.2020-01-01.lp", "metrics.backup.lp", "metrics.lp"]


@pytest.mark.parametrize(("option", "message"), [
    ('rotation_max_archives = -2', "rotation_max_archives: must be -1 (keep all), 0 or more"),
    ('rotation_max_size = "ten"', "rotation_max_size: 'ten' is not a size"),
])
def test_bad_rotation_options_name_the_key(tmp_path, option, message):
    config = tmp_path / "c.toml"
    config.write_text(f'[[inputs.internal]]\n[[outputs.file]]\n{option}\n')
    result = run_collector("check", "-c", str(config))
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_the_embedded_defaults_bound_their_line_protocol_file(monkeypatch):
    monkeypatch.delenv(config_module.ENV_CONFIG, raising=False)
    (file_output,) = [o for o in config_module.load().outputs if o.name == "file"]
    assert file_output.config.rotation_max_size > 0
    assert file_output.config.rotation_max_archives >= 0
