"""Field checks shared by the model configs (SinGAN, hyper-GAN, …).

Each check reads fields of a config object by name and raises :class:`ConfigError` naming the
class and the field, e.g. ``SinGANConfig.lr_g must be a positive number, got -1``.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Iterable, Mapping

from .errors import ConfigError

__all__ = ["positive_ints", "positive_numbers", "nonnegative_numbers", "adam_betas", "fraction"]


def with_overrides(cls: type, values: Mapping[str, Any], overrides: Mapping[str, Any]) -> Any:
    """``cls(**values)`` with ``overrides`` replacing fields: the last step of every config's
    ``from_profile``. An override that names no field of ``cls`` is a ConfigError."""
    unknown = set(overrides) - {f.name for f in dataclasses.fields(cls)}
    if unknown:
        raise ConfigError(f"{cls.__name__}.from_profile: unknown field(s) {sorted(unknown)}")
    return cls(**{**values, **overrides})


def _where(cfg: object, name: str) -> str:
    return f"{type(cfg).__name__}.{name}"


def _is_number(v: object) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def positive_ints(cfg: object, names: Iterable[str]) -> None:
    """Every named field is an int >= 1 (bools refused)."""
    for name in names:
        v = getattr(cfg, name)
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ConfigError(f"{_where(cfg, name)} must be a positive integer, got {v!r}")


def positive_numbers(cfg: object, names: Iterable[str]) -> None:
    """Every named field is a finite number > 0."""
    for name in names:
        v = getattr(cfg, name)
        if not _is_number(v) or v <= 0:
            raise ConfigError(f"{_where(cfg, name)} must be a positive number, got {v!r}")


def nonnegative_numbers(cfg: object, names: Iterable[str]) -> None:
    """Every named field is a finite number >= 0."""
    for name in names:
        v = getattr(cfg, name)
        if not _is_number(v) or v < 0:
            raise ConfigError(f"{_where(cfg, name)} must be a number >= 0, got {v!r}")


def adam_betas(cfg: object, name: str = "betas") -> None:
    """The field is two numbers in [0, 1)."""
    v = getattr(cfg, name)
    if len(v) != 2 or not all(0.0 <= b < 1.0 for b in v):
        raise ConfigError(f"{_where(cfg, name)} must be two numbers in [0, 1), got {v!r}")


def fraction(cfg: object, name: str, note: str = "") -> None:
    """The field is a number in (0, 1]; ``note`` is added to the message, e.g. "(1: no decay)"."""
    v = getattr(cfg, name)
    if not _is_number(v) or not 0.0 < v <= 1.0:
        raise ConfigError(f"{_where(cfg, name)} must be in (0, 1]{' ' + note if note else ''}, "
                          f"got {v!r}")
