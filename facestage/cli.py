"""The ``facestage`` command: one entry point, one module per subcommand in ``facestage.commands``."""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from . import __version__
from .errors import FacestageError

# Each module defines ``register(subparsers)``; its parser sets ``func(args) -> int``.
COMMAND_MODULES = ("track", "effects", "avatar", "speech", "serve", "bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facestage",
        description="Real-time face tracking, face effects and digital humans on a CPU.",
        epilog="Run 'facestage COMMAND --help' for the options of one command.",
    )
    parser.add_argument("--version", action="version", version=f"facestage {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        importlib.import_module(f"facestage.commands.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    # Quiet MediaPipe/TFLite C++ logging before anything imports them.
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except FacestageError as exc:
        print(f"facestage: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("facestage: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
