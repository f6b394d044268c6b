"""The ``bayesdepth`` command line: ``demo``, ``fit``, ``sample``, ``diagnose``, ``langevin``.

Options come from flags or from a TOML file given with ``--config`` (top-level keys apply to every
subcommand, a ``[fit]``/``[sample]``/... table to that one; flags win). A user mistake exits with
status 2 and one line on stderr, never a traceback. Heavy imports happen only inside the commands,
so ``bayesdepth --help`` is instant.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

DATASETS = ("toy1d", "annuli", "moons", "digits")
MODELS = ("sdebnn", "anode", "bnn")
SAMPLERS = ("sgld", "sghmc", "psgld", "sgd", "svag")


class UsageError(Exception):
    """A mistake in what the user asked for; reported as one line with exit status 2."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def _common(parser: argparse.ArgumentParser, out_default: str) -> None:
    parser.add_argument("--config", type=Path, help="TOML file with default options")
    parser.add_argument("--out", type=Path, default=Path(out_default), help="output folder")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--device", default=None, help="torch device, e.g. cpu or cuda")
    parser.add_argument("--threads", type=int, default=1,
                        help="CPU threads for torch (default 1: fastest for these small models)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or messages")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _data_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", default="toy1d",
        help=f"embedded data set ({' | '.join(DATASETS)}) or a CSV file with a header row",
    )
    parser.add_argument("--target", help="label column of a CSV file")
    parser.add_argument(
        "--task", choices=("auto", "regression", "classification"), default="auto",
        help="for CSV data: auto treats an integer target with <= 20 values as classes",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for the documentation and the tests)."""
    parser = _Parser(
        prog="bayesdepth",
        description="Continuous-depth Bayesian neural networks: fit, sample, diagnose, theory.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    demo = sub.add_parser(
        "demo", help="end-to-end demo on embedded data, with an HTML report",
        description="Fit an SDE-BNN by STL SVI, run SGLD chains on a Bayesian network, check "
        "SGD-as-a-sampler against its Langevin prediction, and write runs/<name>/index.html.",
    )
    _common(demo, "runs/demo")
    demo.add_argument("--quick", action="store_true", help="tiny settings (a smoke test)")

    fit = sub.add_parser("fit", help="variational inference (SVI) for a model on a data set")
    _common(fit, "runs/fit")
    _data_options(fit)
    fit.add_argument("--model", choices=MODELS, default="sdebnn")
    fit.add_argument("--estimator", choices=("stl", "reparam", "kl"), default="stl",
                     help="gradient estimator: sticking the landing (default), Trace_ELBO, "
                     "or KL-only (sdebnn)")
    fit.add_argument("--steps", type=int, default=1000, help="SVI steps")
    fit.add_argument("--lr", type=float, default=1e-2, help="Adam learning rate")
    fit.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: all)")
    fit.add_argument("--num-samples", type=int, default=64, help="predictive samples")

    smp = sub.add_parser("sample", help="SG-MCMC or SGD chains on a Bayesian network's posterior")
    _common(smp, "runs/sample")
    _data_options(smp)
    smp.add_argument("--model", choices=("bnn", "anode"), default="bnn")
    smp.add_argument("--sampler", choices=SAMPLERS, default="sgld")
    smp.add_argument("--chains", type=int, default=4)
    smp.add_argument("--draws", type=int, default=500)
    smp.add_argument("--warmup", type=int, default=500)
    smp.add_argument("--thin", type=int, default=1)
    smp.add_argument("--lr", type=float, default=None,
                     help="step size (default depends on the sampler)")
    smp.add_argument("--temperature", type=float, default=1.0)
    smp.add_argument("--batch-size", type=int, default=None, help="minibatch size (default: all)")
    smp.add_argument("--checkpoint", type=Path, default=None, help="checkpoint folder")
    smp.add_argument("--checkpoint-every", type=int, default=100,
                     help="draws between checkpoints (default 100)")
    smp.add_argument("--resume", action="store_true", help="continue from --checkpoint")

    dia = sub.add_parser("diagnose", help="summary and plots of a posterior netCDF file")
    _common(dia, "")
    dia.add_argument("path", type=Path, help="an ArviZ netCDF file (posterior.nc)")
    dia.add_argument("--var-names", nargs="*", default=None, help="variables to show")

    lan = sub.add_parser("langevin", help="SGD's stationary covariance: prediction vs chains")
    _common(lan, "runs/langevin")
    lan.add_argument("--problem", default="quadratic",
                     help="'quadratic' (the test problem Q), 'regression' (embedded linear "
                     "regression) or a CSV file (linear regression on its columns)")
    lan.add_argument("--target", help="label column of a CSV file")
    lan.add_argument("--lr", type=float, default=0.05)
    lan.add_argument("--batch-size", type=int, default=5)
    lan.add_argument("--momentum", type=float, default=0.0)
    lan.add_argument("--weight-decay", type=float, default=0.0)
    lan.add_argument("--chains", type=int, default=256)
    lan.add_argument("--steps", type=int, default=3000, help="steps per chain after burn-in")
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
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"--config: {path} is not valid TOML ({exc})") from None
    values = {k: v for k, v in table.items() if not isinstance(v, dict)}
    values.update(table.get(command, {}))
    return {k.replace("-", "_"): v for k, v in values.items()}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    """Parse flags, with defaults taken from ``--config`` when one is given."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.config is None:
        return args
    config = _load_config(args.config, args.command)
    sub = parser._subparsers._group_actions[0].choices[args.command]
    known = {action.dest for action in sub._actions}
    unknown = sorted(set(config) - known)
    if unknown:
        raise UsageError(
            f"--config: unknown option(s) {', '.join(unknown)} for '{args.command}'; "
            f"allowed: {', '.join(sorted(known - {'help', 'config'}))}"
        )
    for action in sub._actions:
        if action.dest in config and action.type is Path:
            config[action.dest] = Path(config[action.dest])
    sub.set_defaults(**config)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``bayesdepth`` console script; returns the exit status."""
    try:
        args = parse_args(argv)
        if args.threads < 1:
            raise UsageError(f"--threads must be >= 1, got {args.threads}")
        import torch

        from . import commands

        torch.set_num_threads(args.threads)

        summary = getattr(commands, args.command)(args)
    except SystemExit as exc:  # argparse: --help (0) or a bad flag (2)
        return int(exc.code or 0)
    except (UsageError, ValueError, TypeError, FileNotFoundError) as exc:
        print(f"bayesdepth: error: {exc}", file=sys.stderr)
        return 2
    except (FloatingPointError, RuntimeError) as exc:
        from .anode import ODESolverError

        if not isinstance(exc, FloatingPointError | ODESolverError):
            raise  # not a numerical failure of the run: a bug, so show the traceback
        print(f"bayesdepth: failed: {exc}", file=sys.stderr)  # non-finite loss, solver gave up
        return 1
    except KeyboardInterrupt:
        print("bayesdepth: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(summary, indent=2, sort_keys=True, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
