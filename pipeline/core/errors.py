"""Exceptions the stages turn into one clear line instead of a traceback."""

from __future__ import annotations


class PipelineError(Exception):
    """Base class: a problem with the user's input or configuration, not a bug."""


class ConfigError(PipelineError):
    """A params or recipe file is malformed: the message names the file and the key."""


class DataError(PipelineError):
    """A dataset file or image is unusable: the message names the file and, where known, the row."""
