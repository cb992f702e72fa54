"""facestage: real-time face tracking, face effects and digital humans on a CPU."""

__version__ = "0.1.0"
