"""Binds TOML tables onto typed dataclasses, so every plugin gets checked options.

A plugin declares its options as a dataclass; field types say what is accepted and a
field without a default is required. Errors carry the key so the caller can name the
file and section: a user should never have to read a traceback to fix a config.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from collector.units import ByteSize, Duration, Secret


class BindError(ValueError):
    """A bad value at ``key`` (dotted below the section being bound)."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key
        self.message = message


class EnvStr(str):
    """A string that came wholly from ``${VAR}``: may stand for a number or a boolean."""


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def substitute_env(value: Any, key: str = "") -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed table."""
    if isinstance(value, dict):
        return {k: substitute_env(v, f"{key}.{k}" if key else k) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute_env(v, f"{key}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        found = os.environ.get(name)
        if found is None or (found == "" and default is not None):
            if default is None:
                raise BindError(key, f"environment variable {name} is not set")
            return default
        return found

    result = _ENV_REF.sub(replace, value)
    return EnvStr(result) if _ENV_REF.fullmatch(value) else result


def bind(cls: type, table: Any, prefix: str = "") -> Any:
    """Build ``cls`` (a dataclass) from ``table``; raises BindError naming the key."""
    if not isinstance(table, dict):
        raise BindError(prefix, f"expected a table, got {_kind(table)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    secret_files = {f"{name}_file": name for name in fields if hints[name] is Secret}
    values: dict[str, Any] = {}
    for key, raw in table.items():
        where = f"{prefix}.{key}" if prefix else key
        if key in secret_files:
            name = secret_files[key]
            if name in table:
                raise BindError(where, f"give either {name} or {key}, not both")
            values[name] = _read_secret_file(raw, where)
            continue
        if key not in fields:
            raise BindError(where, f"unknown key{suggest(key, [*fields, *secret_files])}")
        values[key] = convert(hints[key], raw, where)
    for name, f in fields.items():
        missing = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        if missing and name not in values:
            raise BindError(f"{prefix}.{name}" if prefix else name, "required key is missing")
    instance = cls(**values)
    check = getattr(instance, "validate", None)
    if check is not None:
        try:
            check()
        except BindError as err:
            raise BindError(f"{prefix}.{err.key}" if prefix else err.key, err.message) from None
    return instance


def convert(hint: Any, raw: Any, where: str) -> Any:
    """Convert one TOML value to the declared type."""
    origin = get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in get_args(hint) if a is not type(None)]
        return None if raw is None else convert(options[0], raw, where)
    if origin is Literal:
        allowed = get_args(hint)
        if raw not in allowed:
            raise BindError(where, f"must be one of {', '.join(map(repr, allowed))}, got {raw!r}")
        return raw
    if origin is list:
        (item,) = get_args(hint)
        if not isinstance(raw, list):
            raise BindError(where, f"expected a list, got {_kind(raw)}")
        return [convert(item, v, f"{where}[{i}]") for i, v in enumerate(raw)]
    if origin is dict:
        _, item = get_args(hint)
        if not isinstance(raw, dict):
            raise BindError(where, f"expected a table, got {_kind(raw)}")
        return {k: convert(item, v, f"{where}.{k}") for k, v in raw.items()}
    if dataclasses.is_dataclass(hint):
        return bind(hint, raw, where)
    return _scalar(hint, raw, where)


def _scalar(hint: Any, raw: Any, where: str) -> Any:
    try:
        if hint in (Duration, ByteSize):
            return hint.parse(raw)
    except ValueError as err:
        raise BindError(where, str(err)) from None
    if hint is Secret:
        if not isinstance(raw, str):
            raise BindError(where, f"expected a string, got {_kind(raw)}")
        return Secret(raw)
    if isinstance(raw, EnvStr) and hint in (int, float, bool):
        return _from_env_text(hint, raw, where)
    if hint is float and isinstance(raw, int) and not isinstance(raw, bool):
        return float(raw)
    if hint is bool and not isinstance(raw, bool):
        raise BindError(where, f"expected true or false, got {_kind(raw)}")
    if hint is int and (isinstance(raw, bool) or not isinstance(raw, int)):
        raise BindError(where, f"expected an integer, got {_kind(raw)}")
    if hint in (str, float) and not isinstance(raw, hint):
        raise BindError(where, f"expected {'a string' if hint is str else 'a number'}, "
                               f"got {_kind(raw)}")
    return raw


def _from_env_text(hint: type, raw: str, where: str) -> Any:
    if hint is bool:
        if raw.lower() in ("true", "1", "yes"):
            return True
        if raw.lower() in ("false", "0", "no"):
            return False
        raise BindError(where, f"expected true or false, got {raw!r}")
    try:
        return hint(raw)
    except ValueError:
        raise BindError(where, f"expected {hint.__name__}, got {raw!r}") from None


def _read_secret_file(raw: Any, where: str) -> Secret:
    if not isinstance(raw, str):
        raise BindError(where, f"expected a file path, got {_kind(raw)}")
    try:
        return Secret(Path(raw).read_text().strip())
    except OSError as err:
        raise BindError(where, f"cannot read secret file: {err.strerror}") from None


def suggest(word: str, known: list[str]) -> str:
    """" (did you mean X? known: ...)": the closest known words first, then all of them."""
    close = difflib.get_close_matches(word, known, n=3, cutoff=0.6)
    listed = ", ".join(sorted(known))
    if close:
        return f" (did you mean {' or '.join(map(repr, close))}? known: {listed})"
    return f" (known: {listed})"


def _kind(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    for kind, name in names.items():
        if isinstance(value, kind):
            return f"{name} ({value!r})" if kind in (bool, int, float, str) else name
    return type(value).__name__
