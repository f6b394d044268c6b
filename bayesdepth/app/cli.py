"""The ``bayesdepth`` command line: ``demo``, ``fit``, ``predict``, ``sample``, ``diagnose``,
``langevin``.

Options come from flags or from a TOML file given with ``--config`` (top-level keys apply to every
subcommand, a ``[fit]``/``[sample]``/... table to that one; flags win). Config values are turned
into the same flags and parsed by the same parser, so they meet the same types and choices. A user
mistake exits with status 2 and one line on stderr, a numerical failure with status 1; never a
traceback. Heavy imports happen only inside the commands, so ``bayesdepth --help`` is quick.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .recipes import EMBEDDED_DATA, FIT_MODELS, SAMPLE_MODELS, SAMPLERS, TASKS, VISION_DATA

__all__ = ["build_parser", "main", "parse_args"]


class UsageError(Exception):
    """A mistake in what the user asked for; reported as one line with exit status 2."""


@dataclass(frozen=True)
class Option:
    """One flag: its names and ``argparse`` settings (the single source for flags and config)."""

    flags: tuple[str, ...]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def dest(self) -> str:
        return self.settings.get("dest", self.flags[0].lstrip("-").replace("-", "_"))

    @property
    def positional(self) -> bool:
        return not self.flags[0].startswith("-")


def _common(out: str | None, *, seed: bool = True, device: bool = True,
            what: str = "output folder") -> list[Option]:
    options = [
        Option(("--config",), dict(type=Path, help="TOML file with default options")),
        Option(("--out",), dict(type=Path, default=None if out is None else Path(out),
                                help=what + (f" (default {out})" if out else ""))),
        Option(("--threads",), dict(type=int, default=1, help="CPU threads for torch "
                                    "(default 1: fastest for these small models)")),
        Option(("--quiet",), dict(action="store_true", help="no progress bars or messages")),
        Option(("--json",), dict(action="store_true", help="print a JSON summary on stdout")),
    ]
    if seed:
        options.append(Option(("--seed",), dict(type=int, default=0,
                                                help="random seed (default 0)")))
    if device:
        options.append(Option(("--device",), dict(default=None,
                                                  help="torch device: cpu, cuda, cuda:N")))
    return options


_DATA = [
    Option(("--data",), dict(default="toy1d", help=f"embedded data set "
                             f"({' | '.join(EMBEDDED_DATA)}), a torchvision data set "
                             f"({' | '.join(VISION_DATA)}; under $BAYESDEPTH_DATA, downloaded "
                             "on first use) or a CSV file with a header row")),
    Option(("--target",), dict(help="label column of a CSV file")),
    Option(("--task",), dict(choices=TASKS, default="auto", help="for CSV data: auto treats an "
                             "integer target with <= 20 values as classes")),
]

COMMANDS: dict[str, tuple[str, list[Option]]] = {
    "demo": ("end-to-end demo on embedded data, with an HTML report", [
        *_common("runs/demo"),
        Option(("--quick",), dict(action="store_true", help="tiny settings (a smoke test)")),
    ]),
    "fit": ("variational inference (SVI) for a model on a data set; saves model.pt", [
        *_common("runs/fit"), *_DATA,
        Option(("--model",), dict(choices=FIT_MODELS, default="sdebnn")),
        Option(("--estimator",), dict(default="stl", help="gradient estimator: stl (sticking "
                                      "the landing, default), reparam (Trace_ELBO) or kl "
                                      "(KL-only, sdebnn)")),
        Option(("--steps",), dict(type=int, default=1000, help="SVI steps")),
        Option(("--lr",), dict(type=float, default=1e-2, help="Adam learning rate")),
        Option(("--batch-size",), dict(type=int, default=None,
                                       help="minibatch size (default: all)")),
        Option(("--num-samples",), dict(type=int, default=64, help="predictive samples")),
        Option(("--distributed",), dict(action="store_true", help="data-parallel SVI over the "
                                        "processes torchrun started (rank 0 writes the files)")),
    ]),
    "predict": ("predictions of a model saved by 'fit' on a CSV file, one row per input", [
        *_common("predictions.csv", what="CSV file to write"),
        Option(("--model-file",), dict(type=Path, required=True, help="model.pt from 'fit'")),
        Option(("--data",), dict(type=Path, required=True,
                                 help="CSV file with the model's feature columns")),
        Option(("--num-samples",), dict(type=int, default=64, help="predictive samples")),
    ]),
    "sample": ("SG-MCMC or SGD chains on a Bayesian network's posterior", [
        *_common("runs/sample"), *_DATA,
        Option(("--model",), dict(choices=SAMPLE_MODELS, default="bnn")),
        Option(("--sampler",), dict(choices=tuple(SAMPLERS), default="sgld")),
        Option(("--chains",), dict(type=int, default=4)),
        Option(("--draws",), dict(type=int, default=500)),
        Option(("--warmup",), dict(type=int, default=500)),
        Option(("--thin",), dict(type=int, default=1)),
        Option(("--lr",), dict(type=float, default=None,
                               help="step size (default depends on the sampler)")),
        Option(("--temperature",), dict(type=float, default=1.0)),
        Option(("--batch-size",), dict(type=int, default=None,
                                       help="minibatch size (default: all)")),
        Option(("--checkpoint",), dict(type=Path, default=None, help="checkpoint folder")),
        Option(("--checkpoint-every",), dict(type=int, default=100,
                                             help="draws between checkpoints (default 100)")),
        Option(("--resume",), dict(action="store_true", help="continue the run in --checkpoint")),
        Option(("--overwrite",), dict(action="store_true",
                                      help="start afresh, replacing the run in --checkpoint")),
        Option(("--extend",), dict(action="store_true", help="with --resume: continue a run "
                                   "started for fewer --draws than asked for now")),
        Option(("--distributed",), dict(action="store_true", help="split the chains over the "
                                        "processes torchrun started (rank 0 writes the files)")),
    ]),
    "diagnose": ("summary and plots of a posterior netCDF file", [
        *_common(None, seed=False, device=False),
        Option(("path",), dict(type=Path, help="an ArviZ netCDF file (posterior.nc)")),
        Option(("--var-names",), dict(nargs="*", default=None, help="variables to show")),
    ]),
    "langevin": ("SGD's stationary covariance: prediction vs chains", [
        *_common("runs/langevin", device=False),
        Option(("--problem",), dict(default="quadratic", help="'quadratic' (embedded Bayesian "
                                    "linear regression) or a CSV file (linear regression on "
                                    "its columns)")),
        Option(("--target",), dict(help="label column of a CSV file")),
        Option(("--lr",), dict(type=float, default=0.05)),
        Option(("--batch-size",), dict(type=int, default=5)),
        Option(("--momentum",), dict(type=float, default=0.0)),
        Option(("--weight-decay",), dict(type=float, default=0.0)),
        Option(("--chains",), dict(type=int, default=256)),
        Option(("--steps",), dict(type=int, default=3000, help="steps per chain after burn-in")),
    ]),
}
_CLI_ONLY = {"command", "config", "threads", "json"}


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the documentation and the tests)."""
    parser = _Parser(
        prog="bayesdepth",
        description="Continuous-depth Bayesian neural networks: fit, predict, sample, diagnose.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (help_text, options) in COMMANDS.items():
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        for option in options:
            cmd.add_argument(*option.flags, **option.settings)
    return parser


def _load_config(path: Path, command: str) -> dict[str, Any]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    if not path.is_file():
        raise UsageError(f"--config: file {str(path)!r} does not exist")
    try:
        table = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"--config: {path} is not valid TOML ({exc})") from None
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    section = table.get(command, {})
    if not isinstance(section, dict):
        raise UsageError(f"--config: [{command}] in {path} must be a table")
    values.update(section)
    return {k.replace("-", "_"): v for k, v in values.items()}


def _config_tokens(config: dict[str, Any], command: str, path: Path) -> list[str]:
    """The flags that the config values stand for (so the parser checks them like flags)."""
    options = {o.dest: o for o in COMMANDS[command][1] if not o.positional}
    unknown = sorted(set(config) - (set(options) - {"config"}))
    if unknown:
        allowed = ", ".join(sorted(set(options) - {"config"}))
        raise UsageError(
            f"--config: unknown option(s) {', '.join(unknown)} for '{command}' in {path}; "
            f"allowed: {allowed}"
        )
    tokens: list[str] = []
    for key, value in config.items():
        option = options[key]
        flag = option.flags[0]
        if option.settings.get("action") == "store_true":
            if not isinstance(value, bool):
                raise UsageError(f"--config: {key} must be true or false, got {value!r}")
            tokens += [flag] if value else []
        elif option.settings.get("nargs") == "*":
            values = value if isinstance(value, list) else [value]
            tokens += [flag, *map(str, values)]
        elif isinstance(value, dict | list):
            raise UsageError(f"--config: {key} must be a single value, got {value!r}")
        else:
            tokens += [flag, str(value).lower() if isinstance(value, bool) else str(value)]
    return tokens


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults taken from ``--config`` when one is given."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        return args
    tokens = _config_tokens(_load_config(args.config, args.command), args.command, args.config)
    at = argv.index(args.command) + 1
    return parser.parse_args([*argv[:at], *tokens, *argv[at:]])


def _run(args: argparse.Namespace) -> dict[str, Any]:
    from . import commands

    options = {k: v for k, v in vars(args).items() if k not in _CLI_ONLY}
    if args.command == "diagnose":
        options["json_output"] = args.json
    return getattr(commands, args.command)(**options)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesdepth`` console script; returns the exit status."""
    try:
        args = parse_args(argv)
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        import matplotlib

        matplotlib.use("Agg")  # the command line writes files; it never opens windows
        import torch

        torch.set_num_threads(args.threads)
        summary = _run(args)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2)
        return int(exc.code or 0)
    except (UsageError, ValueError, TypeError, FileNotFoundError, IsADirectoryError,
            PermissionError) as exc:
        print(f"bayesdepth: error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("bayesdepth: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        from bayesdepth.anode.solver import ODESolverError

        if isinstance(exc, FloatingPointError | ODESolverError):
            print(f"bayesdepth: failed: {_one_line(exc)}", file=sys.stderr)
            return 1
        if os.environ.get("BAYESDEPTH_DEBUG"):
            raise
        print(f"bayesdepth: internal error: {type(exc).__name__}: {_one_line(exc)} "
              "(set BAYESDEPTH_DEBUG=1 to see the traceback)", file=sys.stderr)
        return 3
    if args.json and summary is not None:
        from .outputs import strict_json

        print(strict_json(summary))
    return 0


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text if text else type(exc).__name__


if __name__ == "__main__":
    sys.exit(main())
