"""Compatibility: the incremental builder is :class:`polyingress.core.builder.Builder`.

One Builder states the build semantics once; a first build and an update after a change run
the same per-host and per-object code (see core/builder.py).
"""

from __future__ import annotations

from polyingress.core.builder import Builder

IncrementalBuilder = Builder

__all__ = ["IncrementalBuilder"]
