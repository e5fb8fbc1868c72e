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
    "paco_core.commands.consistency",
    "paco_core.commands.pool",
    "paco_core.commands.guarded_chain",
    "paco_core.commands.demo",
    "paco_core.commands.train",
    "paco_core.commands.jobs",
    "paco_core.commands.prompt_set",
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
    except KeyboardInterrupt:
        print(f"paco {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:
        if getattr(args, "debug", False):
            traceback.print_exc()
        print(f"paco {args.command}: error: {error_line(error)}", file=sys.stderr)
        return 1


def error_line(error: Exception) -> str:
    """The one line a user sees for an error: a PaCoError's own message; for a file-system
    error what could not be done where; for anything else (a bug) its type and first line,
    with the hint to rerun with --debug."""
    if isinstance(error, PaCoError):
        return " ".join(str(error).split("\n"))
    if isinstance(error, OSError):
        where = f" ({error.filename})" if error.filename else ""
        return f"{error.strerror or error}{where}. Check the path, its permissions and free disk space."
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    first = lines[0][:300] if lines else "no details"
    return f"unexpected {type(error).__name__}: {first} (rerun with --debug for the traceback and report it)"


if __name__ == "__main__":
    sys.exit(main())
