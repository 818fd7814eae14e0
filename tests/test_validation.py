"""Shared config field checks: messages name the class and field."""
from dataclasses import dataclass

import pytest

from mil_core import validation as check
from mil_core.errors import ConfigError


@dataclass
class Cfg:
    n: object = 1
    lr: object = 0.1
    w: object = 0.0
    betas: object = (0.5, 0.999)
    at: object = 0.8


def test_valid_config_passes():
    cfg = Cfg()
    check.positive_ints(cfg, ["n"])
    check.positive_numbers(cfg, ["lr"])
    check.nonnegative_numbers(cfg, ["w"])
    check.adam_betas(cfg)
    check.fraction(cfg, "at")


@pytest.mark.parametrize("field,value,call,message", [
    ("n", True, lambda c: check.positive_ints(c, ["n"]), "Cfg.n must be a positive integer"),
    ("n", 0, lambda c: check.positive_ints(c, ["n"]), "Cfg.n must be a positive integer"),
    ("lr", float("nan"), lambda c: check.positive_numbers(c, ["lr"]), "Cfg.lr must be a positive"),
    ("w", -1e-9, lambda c: check.nonnegative_numbers(c, ["w"]), "Cfg.w must be a number >= 0"),
    ("betas", (0.5, 1.0), check.adam_betas, r"Cfg.betas must be two numbers in \[0, 1\)"),
    ("at", 0.0, lambda c: check.fraction(c, "at", "(1: no decay)"),
     r"Cfg.at must be in \(0, 1\] \(1: no decay\), got 0.0"),
])
def test_bad_fields_name_class_and_field(field, value, call, message):
    cfg = Cfg(**{field: value})
    with pytest.raises(ConfigError, match=message):
        call(cfg)
