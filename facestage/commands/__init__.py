"""CLI subcommands, one module each; see ``facestage.cli.COMMAND_MODULES``."""
