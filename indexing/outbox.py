"""The webhook outbox's Lua (``outbox.lua``), shared by every script whose change emits events."""

from __future__ import annotations

from importlib import resources

__all__ = ["OUTBOX_LUA"]

OUTBOX_LUA: str = resources.files("indexing").joinpath("outbox.lua").read_text() + "\n"
