"""The `paco` command: every capability of the pack without ComfyUI.

Each subcommand lives in its own module under ``paco_core/commands/`` and exposes
``register(subparsers)``, which adds its parser and sets ``func`` to a callable taking
the parsed ``argparse.Namespace`` and returning an exit code. Modules are imported only
when the command line is parsed, so ``paco --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import traceback

from paco_core import __version__
from paco_core.errors import PaCoError

DEBUG_HELP = "on an error, also print the Python traceback"

COMMAND_MODULES = (
    "paco_core.commands.tiny_models",
    "paco_core.commands.score",
    "paco_core.commands.generate",
    "paco_core.commands.demo",
    "paco_core.commands.train",
    "paco_core.commands.jobs",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="paco",
        description="PaCo-RL tools: tiny models, judge scoring, generation, demo and training.",
    )
    parser.add_argument("--version", action="version", version=f"paco {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    parser.add_argument("--debug", action="store_true", help=DEBUG_HELP)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(module_name).register(subparsers)
    for subparser in subparsers.choices.values():  # also accepted after the command
        subparser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=DEBUG_HELP)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (PaCoError, OSError) as error:
        # OSError: the file system refused (a full or read-only disk, a missing file)
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"paco {args.command}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"paco {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        where = f": {error.filename!r}" if error.filename else ""
        return f"{error.strerror}{where}"
    return str(error)


if __name__ == "__main__":
    sys.exit(main())
