"""The ``facestage`` entry point itself: help, version, unknown commands."""

import subprocess
import sys

from facestage import __version__
from facestage.cli import COMMAND_MODULES, build_parser, main

# say, chat and talk live in the ``speech`` module; every other module registers its own name.
EXPECTED = {"track", "effects", "avatar", "say", "chat", "talk", "serve", "bench"}


def test_help_lists_every_command(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for name in EXPECTED:
        assert f"    {name} " in out, name


def test_version_via_module():
    proc = subprocess.run([sys.executable, "-m", "facestage", "--version"], capture_output=True, text=True)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"facestage {__version__}"


def test_unknown_command_is_usage_error():
    proc = subprocess.run([sys.executable, "-m", "facestage", "no-such-command"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_every_command_module_registers_and_explains_itself():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == EXPECTED
    assert len(COMMAND_MODULES) == 6
    for action in sub._choices_actions:  # the one-line help shown in `facestage --help`
        assert len(action.help or "") > 10, action.dest


def test_unknown_benchmark_is_usage_error():
    proc = subprocess.run([sys.executable, "-m", "facestage", "bench", "nope"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr
