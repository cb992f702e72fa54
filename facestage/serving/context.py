"""What the HTTP routes and access checks need from the server, as a Protocol: ``http`` and ``auth`` depend
on this, not on ``app`` (which imports them), so the modules form no import cycle."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .engine import Engine
    from .security import OperatorKey, SecurityConfig


class ServerContext(Protocol):
    engine: Engine
    security: SecurityConfig
    operator: OperatorKey
    sessions: set[Any]
    connections: int
    demo_brand: str | None
    demo_key: str | None
