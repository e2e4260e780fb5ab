"""Filters (Telegraf semantics) on inputs, aggregators and outputs, and basicstats
windows aligned to UTC with a grace for late metrics."""

from __future__ import annotations

import logging
import math
import statistics

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from collector import Metric, decode_line_protocol
from collector.aggregation import AggregatorRunner
from collector.filters import FilterOptions, Selector, expand_braces
from collector.stats import StatsRegistry
from plugins.aggregators.basicstats.plugin import BasicStats, BasicStatsConfig
from tests.fixed_input import agent_from, register_input
from tests.helpers import run_collector, write_config

MINUTE = 60 * 10**9
T0 = 1_795_000_020 * 10**9  # a minute boundary in UTC (1795000020 = 29916667 * 60)


def selector(**options) -> Selector:
    made = Selector.of(FilterOptions(**options))
    assert made is not None
    return made


def test_name_and_tag_filters_follow_telegraf():
    metrics = [Metric("se521", {"celsius": 1.0}, {"channel": "T1"}),
               Metric("se521_status", {"battery": 3}, {}),
               Metric("raven_demand", {"kw": 1.0}, {"meter_mac": "0x1"})]

    def names(chosen: Selector) -> list[str]:
        return [metric.name for metric in chosen.apply(metrics)]

    assert names(selector(namepass=["se521*"])) == ["se521", "se521_status"]
    assert names(selector(namepass=["se521"])) == ["se521"]
    assert names(selector(namedrop=["se521_*", "raven_{price,demand}"])) == ["se521"]
    assert names(selector(tagpass={"channel": ["T?"]})) == ["se521"], "no tag, no pass"
    assert names(selector(tagdrop={"channel": ["T[12]"], "meter_mac": ["0x9"]})) == [
        "se521_status", "raven_demand"]
    assert names(selector(namepass=["*"], tagpass={"channel": ["T3"], "meter_mac": ["*"]})
                 ) == ["raven_demand"], "tagpass: any listed tag may match"


def test_field_filters_keep_or_drop_fields_and_drop_empty_metrics():
    metric = Metric("se521", {"celsius": 1.0, "state": "ok"}, {"channel": "T1"})
    (kept,) = selector(fieldpass=["cel*"]).apply([metric])
    assert kept.fields == {"celsius": 1.0}
    assert metric.fields == {"celsius": 1.0, "state": "ok"}, "the original is untouched"
    (kept,) = selector(fielddrop=["state"]).apply([metric])
    assert kept.fields == {"celsius": 1.0}
    assert selector(fieldpass=["kw"]).apply([metric]) == []


def test_braces_expand_as_in_telegraf():
    assert expand_braces("a{b,c}d{e,f}") == ["abde", "abdf", "acde", "acdf"]
    assert expand_braces("plain*") == ["plain*"]


def test_output_filters_route_each_metric_where_it_belongs(tmp_path):
    register_input("mixed", lambda: [
        Metric("se521", {"celsius": 20.5, "state": "ok"}, {"channel": "T1"}, T0),
        Metric("raven_demand", {"kw": -1.5}, {}, T0)])
    agent = agent_from("""
omit_hostname = true
[[inputs.mixed]]
[[outputs.file]]
alias = "temperatures"
files = ["t.lp"]
namepass = ["se521*"]
fieldpass = ["celsius"]
[[outputs.file]]
alias = "everything_but"
files = ["e.lp"]
namedrop = ["se521"]
[[outputs.file]]
alias = "all"
files = ["a.lp"]
""", tmp_path)
    agent.polled[0].gather_once()
    for output in agent.outputs:
        assert output.flush(deadline=float("inf"))
    agent.close()
    assert (tmp_path / "t.lp").read_text() == f"se521,channel=T1 celsius=20.5 {T0}\n"
    assert (tmp_path / "e.lp").read_text() == f"raven_demand kw=-1.5 {T0}\n"
    assert len((tmp_path / "a.lp").read_text().splitlines()) == 2


def test_input_filters_apply_to_what_the_plugin_emits(tmp_path):
    result = run_collector("test", "-c", str(write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
omit_hostname = true
[[inputs.internal]]
namepass = ["internal_process"]
name_override = "proc"
""")))
    assert result.returncode == 0, result.stderr
    assert result.stdout and all(line.startswith("proc ") for line in result.stdout.splitlines())


def runner(period: float = 60, grace: float = 1, drop_original: bool = False,
           stats: tuple[str, ...] = ("count", "min", "max", "mean", "s2", "stdev"),
           **filters) -> tuple[AggregatorRunner, list[Metric], list[int]]:
    """An aggregator on a clock the test sets; what it commits, and its clock."""
    committed: list[Metric] = []
    now = [T0]
    counters = StatsRegistry().counters("aggregator", ("taken", "late", "windows"))
    plugin = BasicStats(BasicStatsConfig(list(stats)), None)
    made = AggregatorRunner(plugin, Selector.of(FilterOptions(**filters)), period, grace,
                            drop_original, counters, logging.getLogger("test.aggregator"),
                            committed.extend,
                            clock=lambda: now[0])
    return made, committed, now


def test_windows_are_aligned_to_utc_and_summarised_after_their_grace():
    aggregator, committed, now = runner(grace=5)
    readings = {T0 + 1: 20.0, T0 + 30 * 10**9: 21.0, T0 + 59 * 10**9: 25.0,
                T0 + MINUTE: 30.0, T0 + MINUTE + 10**9: 31.0}
    for stamp, value in readings.items():
        aggregator.offer(Metric("se521", {"celsius": value, "state": "ok"},
                                {"channel": "T1"}, stamp))
    now[0] = T0 + MINUTE + 4 * 10**9
    aggregator.close_windows()
    assert committed == [], "within the grace"
    now[0] = T0 + MINUTE + 5 * 10**9
    aggregator.close_windows()
    (summary,) = committed
    assert summary.time_ns == T0 and summary.name == "se521"
    assert summary.tags == {"channel": "T1"}
    first_minute = [20.0, 21.0, 25.0]
    assert summary.fields == {
        "celsius_count": 3, "celsius_min": 20.0, "celsius_max": 25.0,
        "celsius_mean": pytest.approx(statistics.mean(first_minute)),
        "celsius_s2": pytest.approx(statistics.variance(first_minute)),
        "celsius_stdev": pytest.approx(statistics.stdev(first_minute))}, "no string field"
    aggregator.close_windows(all_of_them=True)
    assert committed[1].time_ns == T0 + MINUTE and committed[1].fields["celsius_count"] == 2


def test_a_late_metric_is_counted_not_aggregated_and_its_original_goes_on():
    aggregator, committed, now = runner(grace=0, drop_original=True)
    assert aggregator.offer(Metric("m", {"v": 1.0}, {}, T0 + 5)) is True, "original dropped"
    now[0] = T0 + MINUTE
    aggregator.close_windows()
    assert aggregator.offer(Metric("m", {"v": 9.0}, {}, T0 + 7)) is False, "late: passes on"
    assert aggregator.counters.get("late") == 1
    assert committed[0].fields["v_count"] == 1


def test_each_series_is_summarised_on_its_own():
    aggregator, committed, _ = runner(stats=("count", "mean"), namepass=["se521"])
    for channel, values in {"T1": [1.0, 3.0], "T2": [10.0]}.items():
        for index, value in enumerate(values):
            aggregator.offer(Metric("se521", {"celsius": value}, {"channel": channel},
                                    T0 + index))
    assert aggregator.offer(Metric("other", {"v": 1.0}, {}, T0)) is False
    aggregator.close_windows(all_of_them=True)
    by_channel = {m.tags["channel"]: m.fields for m in committed}
    assert by_channel == {"T1": {"celsius_count": 2, "celsius_mean": 2.0},
                          "T2": {"celsius_count": 1, "celsius_mean": 10.0}}


@settings(max_examples=60)
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False), min_size=2, max_size=300))
def test_statistics_match_an_independent_computation(values):
    aggregator, committed, _ = runner(stats=("count", "min", "max", "mean", "sum", "s2",
                                             "first", "last", "diff"))
    for index, value in enumerate(values):
        aggregator.offer(Metric("m", {"v": value}, {}, T0 + index))
    aggregator.close_windows(all_of_them=True)
    fields = committed[0].fields
    assert fields["v_count"] == len(values)
    assert fields["v_min"] == min(values) and fields["v_max"] == max(values)
    assert fields["v_mean"] == pytest.approx(statistics.fmean(values), rel=1e-9, abs=1e-6)
    assert fields["v_sum"] == pytest.approx(math.fsum(values), rel=1e-9, abs=1e-6)
    assert fields["v_s2"] == pytest.approx(statistics.variance(values), rel=1e-6, abs=1e-6)
    assert (fields["v_first"], fields["v_last"]) == (values[0], values[-1])
    assert fields["v_diff"] == pytest.approx(values[-1] - values[0])


def test_the_agent_aggregates_an_instrument_per_minute(tmp_path):
    """Through the real agent: the emulated SE521's readings and their means."""
    result = run_collector("test", "-c", str(write_config(tmp_path, f"""
[agent]
state_dir = "{tmp_path}"
[[inputs.se521]]
emulate_when_absent = true
[[aggregators.basicstats]]
period = "1m"
stats = ["mean", "count"]
namepass = ["se521"]
fieldpass = ["celsius"]
""")))
    assert result.returncode == 0, result.stderr
    metrics = decode_line_protocol(result.stdout)
    raw = [m for m in metrics if m.name == "se521" and "celsius" in m.fields]
    means = [m for m in metrics if m.name == "se521" and "celsius_mean" in m.fields]
    assert len(raw) == 4 and len(means) == 4, result.stdout
    for mean in means:
        (reading,) = [m for m in raw if m.tags["channel"] == mean.tags["channel"]]
        assert mean.fields == {"celsius_mean": reading.fields["celsius"], "celsius_count": 1}
        assert mean.time_ns == reading.time_ns - reading.time_ns % MINUTE
        assert mean.tags == reading.tags, "the input's and the agent's tags are kept"
