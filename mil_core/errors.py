"""Exceptions raised by mil_core.

Every error a user can cause (a bad file, a bad argument, a missing download) is raised early,
names the file or argument involved, and says what to do about it.
"""
from __future__ import annotations


class MilError(Exception):
    """Base class of every error raised on purpose by mil_core."""


class DataError(MilError, ValueError):
    """A data file or folder is missing, unreadable, or unsuitable (e.g. too small)."""


class OfflineError(MilError, RuntimeError):
    """A download was requested but the resource could not be reached."""


class CheckpointError(MilError, ValueError):
    """A checkpoint is missing, truncated, tampered with, or not written by mil_core."""


class ConfigError(MilError, ValueError):
    """An unknown profile or an invalid configuration value."""


class TrainingError(MilError, RuntimeError):
    """Training cannot go on (e.g. a loss became NaN); the message names the last good checkpoint."""


class NoveltyWarning(UserWarning):
    """An input lies far outside what a model was trained on (e.g. a hyper-GAN asked to
    generate for an image unlike its training images); its outputs may not follow the input."""
