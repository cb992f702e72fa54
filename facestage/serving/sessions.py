"""Compatibility names: the sessions live one per module now (base, effects_session, render_session,
watch_session, avatar_session, employee_session); codecs in ``media``, channels in ``channels``."""

from .base import SEND_BUFFER_LIMIT, Outbox, Session
from .channels import Channels, check_channel
from .effects_session import MAX_FACES, EffectsSession
from .media import decode_jpeg, encode_jpeg, encode_rgba, parse_color, render_image, render_params
from .render_session import RenderSession
from .watch_session import WatchSession

__all__ = ["MAX_FACES", "SEND_BUFFER_LIMIT", "Channels", "EffectsSession", "Outbox", "RenderSession", "Session",
           "WatchSession", "check_channel", "decode_jpeg", "encode_jpeg", "encode_rgba", "parse_color",
           "render_image", "render_params"]
