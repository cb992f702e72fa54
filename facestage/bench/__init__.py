"""Benchmarks behind ``facestage bench NAME``; each module has ``run(args) -> dict``."""
