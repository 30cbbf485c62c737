"""The ``jaxopt-lab`` command: ``demo`` (the main job) and ``sweep CONFIG.toml``."""

from __future__ import annotations

import argparse
import sys

from jaxopt_lab import __version__


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``jaxopt-lab``.

    Returns:
      An ``argparse.ArgumentParser`` with the ``demo`` and ``sweep`` subcommands.
    """
    parser = argparse.ArgumentParser(
        prog="jaxopt-lab",
        description="Differentiable optimization in JAX: demos and hyperparameter sweeps.",
    )
    parser.add_argument("--version", action="version", version=f"jaxopt-lab {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="learn the L2 strength of logistic regression on digits by hypergradient descent",
    )
    demo.add_argument("--out", default="jaxopt_lab_out", help="output folder (default: %(default)s)")
    demo.add_argument("--steps", type=int, default=25, help="outer hypergradient steps")
    demo.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    sweep = sub.add_parser("sweep", help="run a hyperparameter sweep described by a TOML config")
    sweep.add_argument("config", help="path to the sweep's TOML config")
    sweep.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``jaxopt-lab`` console script.

    Args:
      argv: command-line arguments (default: ``sys.argv[1:]``).

    Returns:
      The process exit code (130 after Ctrl-C, with a one-line message instead of a traceback).
    """
    args = build_parser().parse_args(argv)
    try:
        if args.command == "demo":
            from jaxopt_lab import demo

            return demo.main(out=args.out, steps=args.steps, progress=not args.no_progress)
        from jaxopt_lab.sweep import cli as sweep_cli

        return sweep_cli.main(args.config, progress=not args.no_progress)
    except KeyboardInterrupt:
        print(f"jaxopt-lab {args.command}: interrupted.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
