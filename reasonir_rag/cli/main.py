"""reasonir-rag: ReasonIR retrieval from the command line (index, search, demo; rewrite, rerank, eval).

Results go to stdout, logs and progress bars to stderr (``-v`` for more logging, ``--quiet`` for no bars).
Expected failures (a missing collection or path, an encoder that does not match the index, bad input) print
one line on stderr and exit with code 2; ``-v`` adds the traceback.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from contextlib import nullcontext

from reasonir_rag._common import secrets
from reasonir_rag._common.progress import is_interactive, library_bars_off, set_quiet
from reasonir_rag._version import __version__
from reasonir_rag.cli import demo, index, llm, synthesize
from reasonir_rag.cli import eval as eval_cmd
from reasonir_rag.errors import ReasonIRError

logger = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    verbose_help = "more logging on stderr (-vv for debug); tracebacks on errors"
    parser = argparse.ArgumentParser(prog="reasonir-rag", description=__doc__.splitlines()[0])
    quiet_help = "no progress bars (they are also off when stderr is not a terminal); results and warnings stay"
    parser.add_argument("-V", "--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help=verbose_help)
    parser.add_argument("-q", "--quiet", action="store_true", help=quiet_help)
    common = argparse.ArgumentParser(add_help=False)  # -v and -q after the subcommand too, without resetting them
    common.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS, help=verbose_help)
    common.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS, help=quiet_help)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    # Each command module's register() adds subparsers that set_defaults(func=handler), where
    # handler(args) -> exit code; expected errors raise (exit 2, see main).
    index.register(sub, common)  # index, search
    demo.register(sub, common)  # demo
    llm.register(sub)  # rewrite, rerank
    eval_cmd.register(sub)  # eval mmlu|gpqa|retrieval
    synthesize.register(sub, common)  # synthesize
    return parser


def _setup_logging(verbose: int) -> dict[str, int]:
    """Logs go to stderr; returns the logger levels it changed, so that main() can put them back."""
    level = logging.WARNING if verbose <= 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(stream=sys.stderr, level=level, format="%(levelname)s %(name)s: %(message)s")
    secrets.install_filter(logging.getLogger().handlers)  # no secret in a log line, whoever logs it
    wanted = {"reasonir_rag": level, **{name: max(level, logging.WARNING) for name in ("httpx", "chromadb", "urllib3")}}
    saved = {name: logging.getLogger(name).level for name in wanted}
    for name, value in wanted.items():
        logging.getLogger(name).setLevel(value)
    return saved


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    saved = _setup_logging(args.verbose)
    was_quiet = set_quiet(args.quiet)
    bars = library_bars_off() if args.quiet or not is_interactive(sys.stderr) else nullcontext()
    try:
        with bars:  # Hugging Face's loading bars follow ours
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("reasonir-rag: interrupted", file=sys.stderr)
        return 130
    except (ReasonIRError, ValueError, TypeError, LookupError, OSError, ImportError) as exc:
        secrets.scrub(exc)  # a server may have echoed a token into this error or one it chains
        if args.verbose:
            logger.exception("%s failed", args.command)
        print(f"reasonir-rag {args.command}: error: {secrets.redact(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # unexpected: Python prints the traceback, with every secret masked
        secrets.scrub(exc)
        raise
    finally:  # main() may run inside a host program (or a test session): leave its logging as it was
        for name, value in saved.items():
            logging.getLogger(name).setLevel(value)
        set_quiet(was_quiet)


if __name__ == "__main__":
    sys.exit(main())
