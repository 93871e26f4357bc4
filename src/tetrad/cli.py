"""The `tetrad` command: one sub-command group per system, plus `tetrad demo`.

A system registers its commands by providing `tetrad.<package>.cli.add_commands(subparsers)`;
each command's handler takes the parsed arguments and returns an exit status (or None).
Heavy imports stay inside handlers so `tetrad --help` is instant.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from tetrad import __version__
from tetrad.core.errors import UserError

# group name -> (package holding its cli module, one-line description)
GROUPS: dict[str, tuple[str, str]] = {
    "ranking": ("tetrad.ranking", "MTmixAtt multi-scenario, multi-task ranking and its baselines"),
    "sid": ("tetrad.semantic_ids", "semantic IDs: residual quantization, hourglass diagnostics and fixes, retriever"),
    "ttrl": ("tetrad.ttrl", "test-time RL with majority-vote pseudo-labels and the TTRL-Guard"),
    "agents": ("tetrad.agents", "ALFWorld and shop environments, skills, multi-turn rollouts"),
    "skillc": ("tetrad.skillc", "SkillC: RL agents that learn to work without their skill prompts"),
}


def system_module(package: str, module: str):
    """`<package>.<module>` of a system, or None while that system (or that part of it) is not built."""
    try:
        return importlib.import_module(f"{package}.{module}")
    except ModuleNotFoundError as e:
        if e.name in (package, f"{package}.{module}"):
            return None
        raise


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tetrad", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"tetrad {__version__}")
    top = parser.add_subparsers(dest="group", metavar="<group>")

    demo = top.add_parser("demo", help="run the quick embedded default of every system built so far",
                          description="Run each built system's quick path and write runs/demo/<time>/report.md.")
    demo.add_argument("overrides", nargs="*", metavar="key=value", help="demo config overrides (e.g. seed=1)")
    demo.set_defaults(handler=_run_demo)

    for name, (package, description) in GROUPS.items():
        module = system_module(package, "cli")
        sub = top.add_parser(name, help=description + ("" if module else " (not built yet)"),
                             description=description)
        commands = sub.add_subparsers(dest="command", metavar="<command>")
        if module is not None:
            module.add_commands(commands)
        sub.set_defaults(handler=_missing_command(sub, built=module is not None))
    return parser


def _missing_command(sub: argparse.ArgumentParser, built: bool):
    def handler(args) -> int:
        sub.print_help(sys.stderr)
        reason = "no command given" if built else "this system is not built yet"
        print(f"{sub.prog}: {reason}", file=sys.stderr)
        return 2

    return handler


def _run_demo(args) -> int:
    from tetrad.demo import run_demo

    run_demo(args.overrides)
    return 0


def out_of_memory(error: BaseException) -> bool:
    """Whether `error` is an allocation that failed: NumPy's and Python's `MemoryError`, torch's
    `OutOfMemoryError` (CUDA) and the plain `RuntimeError` its CPU allocator raises. A size that
    passes its bounds can still not fit the machine (`bootstrap=10**12`); that is a setting to
    change, one line, not a crash."""
    return (isinstance(error, MemoryError) or type(error).__name__ == "OutOfMemoryError"
            or "can't allocate memory" in str(error))


def main(argv: Sequence[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "handler", None) is None:
        parser.print_help(sys.stderr)
        sys.exit(2)
    try:
        status = args.handler(args)
    except UserError as e:
        print(f"tetrad: error: {e}", file=sys.stderr)
        sys.exit(2)
    except (MemoryError, RuntimeError) as e:
        if not out_of_memory(e):
            raise
        print(f"tetrad: error: out of memory (is a size setting too large for this machine?): "
              f"{str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt:
        print("tetrad: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(status or 0)
