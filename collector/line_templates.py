"""Per-shape line formatters: the encoder's fast path.

An instrument sends the same series with the same field types millions of times. For
each field-type signature (say float, int, bool, str) a formatter factory is compiled
once; binding it to one series' escaped text gives a closure that writes a whole line
with a single f-string, which is several times cheaper than a loop over the fields.

The generated source holds only variable names and fixed syntax: escaped user text
reaches the formatter as closure variables, never as code. A value the formatter was
not made for (another type, NaN, a string that needs escaping) makes it return None,
and the encoder's general path decides what to write and counts what it leaves out.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from collector.metric import Metric

LineFormatter = Callable[[Metric], "str | None"]

MAX_FAST_STRING_CHARS = (64 * 1024 - 1) // 4
"""Strings up to this many characters fit influxd's 64 KiB limit whatever their UTF-8."""

_CHECKS = {
    float: "type({v}) is float and {v} - {v} == 0.0",
    int: "type({v}) is int and -9223372036854775808 <= {v} <= 9223372036854775807",
    bool: "type({v}) is bool",
    str: (
        "type({v}) is str and '\"' not in {v} and '\\\\' not in {v}"
        f" and len({{v}}) <= {MAX_FAST_STRING_CHARS}"
    ),
}
_VALUES = {float: "{{{v}!r}}", int: "{{{v}}}i", bool: "{{_BOOL[{v}]}}", str: '"{{{v}}}"'}


def no_fast_path(metric: Metric) -> None:
    """The formatter of a shape the general path must always handle."""
    return None


def formatter(
    value_types: Sequence[type], pieces: Sequence[str], step: int, divisor: int
) -> LineFormatter | None:
    """A formatter for fields of these types, or None if a type has no fast form.

    ``pieces`` are the escaped texts around the values: series prefix with the first
    ``key=``, then ``,key=`` for each further field, then the space before the stamp.
    The timestamp is truncated to a multiple of ``step`` ns, then divided by ``divisor``.
    """
    signature = tuple(value_types)
    if not signature or any(kind not in _CHECKS for kind in signature):
        return None
    return _factory(signature, _stamp_expression(int(step), int(divisor)))(*pieces)


def _stamp_expression(step: int, divisor: int) -> str:
    expression = "metric.time_ns"
    if step > 1 and step != divisor:
        expression = f"({expression} // {step} * {step})"
    if divisor > 1:
        expression = f"{expression} // {divisor}"
    return expression


@lru_cache(maxsize=256)
def _factory(signature: tuple[type, ...], stamp: str) -> Callable[..., LineFormatter]:
    names = [f"v{i}" for i in range(len(signature))]
    pieces = [f"p{i}" for i in range(len(signature) + 1)]
    typed = list(zip(signature, names, strict=True))
    checks = " and ".join(_CHECKS[kind].format(v=v) for kind, v in typed)
    text = "".join(
        f"{{{piece}}}" + _VALUES[kind].format(v=v)
        for piece, (kind, v) in zip(pieces[:-1], typed, strict=True)
    )
    source = (
        f"def factory({', '.join(pieces)}):\n"
        f"    def line(metric):\n"
        f"        {', '.join(names)}, = metric.fields.values()\n"
        f"        if {checks}:\n"
        f"            return f'{text}{{{pieces[-1]}}}{{{stamp}}}'\n"
        f"        return None\n"
        f"    return line\n"
    )
    namespace: dict = {"_BOOL": ("false", "true")}
    exec(compile(source, f"<line formatter {len(signature)} fields>", "exec"), namespace)
    return namespace["factory"]
