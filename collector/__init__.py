"""Instrument data collector: the public API that plugins build on."""

from collector.devices import AttachedDevice
from collector.episodes import HealthLog
from collector.lineprotocol import decode as decode_line_protocol
from collector.lineprotocol import lines_of as split_line_protocol
from collector.metric import FieldValue, Metric
from collector.plugin import (
    Accumulator,
    Aggregator,
    ConfiguredInput,
    Importer,
    Input,
    NoOptions,
    Output,
    PluginContext,
    Refused,
    RetryableError,
    RowSource,
    StreamingInput,
    Window,
    WriteResult,
)
from collector.timezones import LocalTimes, ZoneError, time_zone
from collector.units import ByteSize, Duration, Secret

__all__ = [
    "Accumulator", "Aggregator", "AttachedDevice", "ByteSize", "ConfiguredInput", "Duration",
    "FieldValue", "HealthLog", "Importer", "Input", "LocalTimes", "Metric", "NoOptions",
    "Output", "PluginContext", "Refused", "RetryableError", "RowSource", "Secret",
    "StreamingInput", "Window", "WriteResult", "ZoneError", "decode_line_protocol",
    "split_line_protocol",
    "time_zone",
]
