"""What the command-line entry points share: one-line usage errors and the config flags."""

from __future__ import annotations

import argparse


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose usage errors are one line (exit 2) instead of the whole usage text."""

    def error(self, message: str) -> None:
        """argparse's usage errors as one line, exit 2."""
        self.exit(2, f"error: {message} (see {self.prog} --help)\n")


def add_config_arguments(parser: argparse.ArgumentParser, config_help: str, set_example: str) -> None:
    """``--config FILE`` and repeatable ``--set KEY=VALUE`` (into ``args.sets``), as every entry point takes them."""
    parser.add_argument("--config", help=config_help)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE",
                        help=f"override one config value, e.g. --set {set_example} (repeatable)")  # fmt: skip
