"""Serving: protocol v1 (sans-I/O), sessions with checkpointable state, HTTP routes and the server app.

    from facestage.serving import ServerThread
    with ServerThread(db_path="/tmp/p.sqlite3") as srv:
        print(srv.url, srv.ws_url)

See docs/protocol.md (wire format) and docs/server.md (running, HTTP API, security, scaling).
"""

from .app import WS_PATH, App, ServerThread, serve_forever
from .protocol import VERSION, Frame, Kind, ProtocolError, pack_frame, parse_message, unpack_frame
from .state import LatestSlot, SessionState

__all__ = ["VERSION", "WS_PATH", "App", "Frame", "Kind", "LatestSlot", "ProtocolError", "ServerThread",
           "SessionState", "pack_frame", "parse_message", "serve_forever", "unpack_frame"]
