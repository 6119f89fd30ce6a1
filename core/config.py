"""Strict dataclass <-> YAML/dict conversion for typed configs (unknown keys and wrong types are rejected).

A config is a (frozen) dataclass whose fields are bool, int, float, str, `Literal[...]`, `X | None`,
`tuple[...]`/`list[...]` of those, or nested config dataclasses. Range checks live in each dataclass's
`__post_init__`, using `check_range` / `check_choice` so that messages name the offending field.
"""

from __future__ import annotations

import dataclasses
import os
import reprlib
import types
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")
MAX_CONFIG_BYTES = 1 << 20  # a config is a few kilobytes; anything over a megabyte is not one

_short = reprlib.Repr()
_short.maxlevel, _short.maxlist, _short.maxdict, _short.maxstring, _short.maxother = 3, 8, 8, 80, 80


def _r(value: Any) -> str:
    """A bounded repr for messages (a YAML alias bomb must not expand into the error text)."""
    return _short.repr(value)


class ConfigError(ValueError):
    """A config file or dict does not match its dataclass; the message names the field and what to change."""


def check_range(
    name: str, value: float, *, lo: float | None = None, hi: float | None = None, lo_open: bool = False
) -> None:
    """Raise ConfigError unless lo <= value <= hi (lo < value when lo_open)."""
    if lo is not None and (value <= lo if lo_open else value < lo):
        raise ConfigError(f"{name}: must be {'>' if lo_open else '>='} {lo}, got {value}")
    if hi is not None and value > hi:
        raise ConfigError(f"{name}: must be <= {hi}, got {value}")


def check_divisible(name: str, value: int, divisor: int, divisor_name: str) -> None:
    if divisor <= 0 or value % divisor != 0:
        raise ConfigError(f"{name}: must be divisible by {divisor_name} ({divisor}), got {value}")


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    """Check `value` against the annotation `tp` and convert containers; raise ConfigError naming `where`."""
    origin = get_origin(tp)
    if tp is Any:
        return value
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(f"{where}: must be one of {list(choices)}, got {_r(value)}")
        return value
    if origin in (Union, types.UnionType):
        args = get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise ConfigError(f"{where}: must not be null")
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as e:
                errors.append(str(e))
        raise ConfigError(f"{where}: {_r(value)} matches none of {_type_name(tp)} ({'; '.join(errors)})")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {_r(value)}")
        args = get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ConfigError(f"{where}: expected {len(args)} items, got {len(value)}: {_r(value)}")
            items = [_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args, strict=True))]
        else:
            item_tp = args[0] if args else Any
            items = [_convert(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else list(items)
    if dataclasses.is_dataclass(tp):
        if dataclasses.is_dataclass(value) and isinstance(value, tp):
            return value
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping for {tp.__name__}, got {type(value).__name__}")
        return from_dict(tp, value, _where=where)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {type(value).__name__} {_r(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {_r(value)}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {_r(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {_r(value)}")
        return value
    raise ConfigError(f"{where}: unsupported field type {_type_name(tp)} in config dataclass")


def from_dict(cls: type[T], data: dict[str, Any], *, _where: str = "") -> T:
    """Build the dataclass `cls` from a plain dict; unknown keys, wrong types and failed checks raise ConfigError."""
    if not dataclasses.is_dataclass(cls):
        raise TypeError(f"{cls!r} is not a dataclass")
    if not isinstance(data, dict):
        raise ConfigError(f"{_where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names, key=str)
    if unknown:
        prefix = f"{_where}." if _where else ""
        raise ConfigError(
            f"{cls.__name__}: unknown key(s) {[prefix + str(k) for k in unknown]}; valid keys are {sorted(names)}"
        )
    kwargs = {}
    for key, value in data.items():
        where = f"{_where}.{key}" if _where else key
        kwargs[key] = _convert(value, hints[key], where)
    try:
        return cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"{_where + ': ' if _where else ''}{e}") from None
    except TypeError as e:  # missing required fields
        raise ConfigError(f"{_where or cls.__name__}: {e}") from None


def to_dict(cfg: Any) -> dict[str, Any]:
    """A dataclass as plain YAML-friendly data (tuples become lists)."""

    def plain(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: plain(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        return v

    return plain(cfg)


def merge_dicts(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Recursive merge: values of `override` win; nested mappings are merged key by key."""
    out = dict(base)
    for k, v in override.items():
        out[k] = merge_dicts(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def parse_scalar(text: str, where: str) -> Any:
    """A YAML scalar given on the command line (`--set key=value`): numbers, booleans, null or text; values YAML
    cannot convert (huge integers, impossible dates) raise ConfigError naming `where`."""
    import yaml

    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise ConfigError(f"{where}: value nested too deeply") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not a valid YAML value ({_r(str(e))})") from None
    except (ValueError, OverflowError) as e:
        raise ConfigError(f"{where}: a value YAML cannot convert ({_r(str(e))}); quote it to keep it as text") from None


def load_config(cls: type[T], path: str | os.PathLike, overrides: dict[str, Any] | None = None) -> T:
    """Read a YAML file into `cls`; `overrides` (nested dict) are merged on top before checking."""
    import yaml

    path = Path(path)
    if not path.is_file():
        if path.exists():  # a folder or a named pipe (reading a pipe would block)
            raise ConfigError(f"{path}: not a regular file; give the path of a YAML config")
        raise FileNotFoundError(f"config file {path} does not exist")
    size = path.stat().st_size
    if size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{path}: {size} bytes is too large for a config file (limit {MAX_CONFIG_BYTES})")
    try:
        text = path.read_bytes().decode("utf-8")
        data = yaml.safe_load(text) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not a UTF-8 text file ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: YAML nested too deeply to be a config") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({e})") from None
    except (ValueError, OverflowError) as e:  # a 5,000-digit integer, a date like 2024-13-45
        raise ConfigError(f"{path}: a value YAML cannot convert ({_r(str(e))}); quote it to keep it as text") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level must be a mapping, got {type(data).__name__}")
    if overrides:
        data = merge_dicts(data, overrides)
    try:
        return from_dict(cls, data)
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def save_config(cfg: Any, path: str | os.PathLike) -> None:
    """Write the resolved config as YAML, atomically (temporary file + rename)."""
    import yaml

    from core.io import atomic_write

    text = yaml.safe_dump(to_dict(cfg), sort_keys=False)
    atomic_write(path, lambda tmp: tmp.write_text(text))


__all__ = [
    "ConfigError",
    "check_divisible",
    "check_range",
    "from_dict",
    "load_config",
    "merge_dicts",
    "parse_scalar",
    "save_config",
    "to_dict",
]
