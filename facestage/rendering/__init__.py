"""Offscreen rendering of avatars: moderngl on EGL (default) or pyrender, on one dedicated thread."""

from .thread import BACKENDS, RenderThread

__all__ = ["BACKENDS", "RenderThread"]
