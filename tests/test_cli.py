"""The ``facestage`` entry point itself: help, version, unknown commands."""

import subprocess
import sys

from facestage import __version__
from facestage.cli import build_parser, main


def test_help_lists_commands(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "facestage" in out and "bench" in out


def test_version_via_module():
    proc = subprocess.run([sys.executable, "-m", "facestage", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"facestage {__version__}"


def test_unknown_command_is_usage_error():
    proc = subprocess.run([sys.executable, "-m", "facestage", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_every_subcommand_has_help():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    for name, p in sub.choices.items():
        assert p.format_help().strip(), name
