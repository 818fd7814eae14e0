"""mil-companion: models, losses, data and metrics for the notebook series.

Import the submodules you need (``mil_core.data``, ``mil_core.profiles``, ``mil_core.runtime``,
``mil_core.checkpoint``, ``mil_core.figures``); this top level stays light so that
``import mil_core`` is fast.
"""
__version__ = "0.1.0"
