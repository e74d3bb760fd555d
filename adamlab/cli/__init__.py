"""The ``adamlab`` command: argument parsing and printing only; the work lives in the library."""

import argparse
import sys

from .. import __version__
from ..distributed import RankFailed
from ..maths.hyperparameters import InvalidHyperparameter
from . import bench, compare, explore, memory, race, trace, train

COMMANDS = (train, trace, race, explore, bench, memory, compare)


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose usage errors are one line and exit status 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n")


def build_parser() -> ArgumentParser:
    parser = ArgumentParser(prog="adamlab", description="The Adam family of optimizers: "
                            "use them, see inside them, trust them.")
    parser.add_argument("--version", action="version", version=f"adamlab {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def main(argv=None) -> int:
    """Run the command line; return the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.run(args) or 0
    except InvalidHyperparameter as error:
        # The optimizers check betas as a pair; the commands take them as --beta1 and --beta2.
        name = {"betas[0]": "beta1", "betas[1]": "beta2"}.get(error.name, error.name)
        flag = "--" + name.replace("_", "-")
        print(f"adamlab {args.command}: error: {flag} must be {error.allowed}, got {error.value!r}",
              file=sys.stderr)
    except ValueError as error:
        print(f"adamlab {args.command}: error: {error}", file=sys.stderr)
    except RankFailed as error:  # a rank of a run on several processes failed: its traceback
        print(f"adamlab {args.command}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"adamlab {args.command}: interrupted", file=sys.stderr)
        return 130
    return 2
