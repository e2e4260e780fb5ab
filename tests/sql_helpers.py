"""Building the SQL output in-process and feeding it what the collector would."""

from __future__ import annotations

import datetime
from pathlib import Path

from collector import config as config_module
from collector.agent import build_plugin
from collector.stats import StatsRegistry
from plugins.outputs.sql.plugin import SQLOutput


class Options:
    """Driver options written out, for a test that reads nothing back."""

    def __init__(self, text: str) -> None:
        self.text = text

    def toml(self) -> str:
        return self.text


def sql_output(store, state_dir: Path, options: str = "") -> SQLOutput:
    """An [[outputs.sql]] writing to ``store`` with extra ``options`` (TOML lines)."""
    text = (f'[agent]\nstate_dir = "{state_dir}"\nomit_hostname = true\n'
            f"[[outputs.sql]]\n{store.toml()}{options}")
    config = config_module.parse(text, "test")
    return build_plugin(config.outputs[0], config, StatsRegistry())


def write(output: SQLOutput, lines: list[str]):
    """One batch, as the agent hands it over."""
    return output.write("".join(line + "\n" for line in lines).encode(), len(lines))


def stamp(value: datetime.datetime | str) -> str:
    """A DATETIME as read back (MariaDB: datetime, SQLite: text), to microseconds."""
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")
    return (value + ".000000")[:26] if len(value) == 19 else value[:26]
