"""The facestage server, thin: wires the serving package (protocol, sessions, HTTP) to the pipelines.

    python -m facestage serve --host 127.0.0.1 --port 8765
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from .serving import WS_PATH, App, ServerThread, serve_forever
from .serving.security import SecurityConfig

__all__ = ["WS_PATH", "App", "ServerThread", "run"]


def run(host: str = "127.0.0.1", port: int = 8765, db_path: str | Path | None = None,
        allow_origins: tuple[str, ...] = (), warm: bool = True, security: SecurityConfig | None = None) -> None:
    """Serve until SIGINT/SIGTERM (the demo brand is installed on first start; ``warm`` preloads models)."""
    asyncio.run(serve_forever(host, port, db_path, allow_origins, warm, security))
