"""Face effects: beauty, makeup, aging, stickers, background and face paint, applied per face.

    from facestage.effects import EffectChain, list_effects, list_presets, load_preset
    chain = EffectChain.from_config({"beauty": {"smooth": 0.6, "eyes": 0.3}, "age": {"years": 30}})
    out = chain.apply(frame_bgr, faces)

See docs/effects.md for every effect, its technique, parameters and cost.
"""

from .base import Effect, Param, register
from .chain import EffectChain, list_effects, list_presets, load_preset, merge_configs, normalize_config

__all__ = ["Effect", "EffectChain", "Param", "list_effects", "list_presets", "load_preset", "merge_configs",
           "normalize_config", "register"]
