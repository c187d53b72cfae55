"""Subcommands of the ``organseg`` command line; see ``organseglib.cli``."""
