"""Typed configs: YAML files plus dotted command-line overrides, validated into dataclasses.

An unknown key or a value of the wrong type is an error that names the key, e.g.
`train.max_stpes: unknown key (known: batch_size, ...)`. Written here rather than taken from
omegaconf because the validation must cover `dict`-typed sub-configs chosen at run time (the model
family decides its dataclass) and must produce plain dataclasses that pickle and print cleanly.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, Union

import yaml


class ConfigError(ValueError):
    pass


def load_yaml(path: str | Path) -> dict:
    try:
        data = yaml.safe_load(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: the top level of a config must be a mapping")
    return data


def apply_overrides(data: dict, overrides: list[str]) -> dict:
    """Applies `a.b.c=value` strings (values parsed as YAML) to a nested dict, returning a copy."""
    data = _deep_copy(data)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"override {item!r} must look like key.path=value")
        key, raw = item.split("=", 1)
        parts = key.strip().split(".")
        if not all(parts):
            raise ConfigError(f"override {item!r} has an empty key")
        node = data
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part} is not a section")
            node = child
        node[parts[-1]] = yaml.safe_load(raw) if raw.strip() else None
    return data


def from_dict(cls: type, data: dict | None, path: str = "") -> Any:
    """Builds dataclass `cls` from a dict, checking every key and type; `path` prefixes error names."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        name = _join(path, unknown[0])
        raise ConfigError(f"{name}: unknown key (known: {', '.join(sorted(fields))})")
    values = {}
    for name, value in data.items():
        values[name] = _coerce(hints[name], value, _join(path, name))
    try:
        return cls(**values)
    except (TypeError, ValueError) as error:
        raise ConfigError(f"{path or cls.__name__}: {error}") from None


def to_dict(config: Any) -> dict:
    return dataclasses.asdict(config)


def _coerce(hint: Any, value: Any, name: str) -> Any:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in args:
            if option is type(None):
                continue
            try:
                return _coerce(option, value, name)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError(errors[0] if errors else f"{name}: invalid value {value!r}")
    if dataclasses.is_dataclass(hint):
        return from_dict(hint, value, name)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{name}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return [_coerce(item, v, f"{name}[{i}]") for i, v in enumerate(value)]
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{name}: expected a mapping, got {value!r}")
        return dict(value)
    if hint in _SCALARS:
        accepted, description = _SCALARS[hint]
        # bool is an int subclass in Python; a config's `true` is never a number here.
        if not isinstance(value, accepted) or (hint is not bool and isinstance(value, bool)):
            raise ConfigError(f"{name}: expected {description}, got {value!r}")
        return float(value) if hint is float else value
    if typing.get_origin(hint) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{name}: expected one of {list(args)}, got {value!r}")
        return value
    return value


_SCALARS = {
    bool: ((bool,), "true or false"),
    int: ((int,), "an integer"),
    float: ((int, float), "a number"),
    str: ((str,), "a string"),
}


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _deep_copy(data: dict) -> dict:
    return {k: _deep_copy(v) if isinstance(v, dict) else v for k, v in data.items()}
