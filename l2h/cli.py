"""The `l2h` command: one subcommand per workflow step; each Snakemake rule calls one of them.

Each stage registers its subcommands beside their handlers (``l2h/<stage>/commands.py``); this
module builds the parser from them, sets up logging and turns user errors into one line."""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from pathlib import Path

from l2h import __version__
from l2h.catalog import commands as catalog
from l2h.core.errors import L2HError
from l2h.core.secrets import RedactingFilter
from l2h.demo import commands as demo
from l2h.evaluation import commands as evaluation
from l2h.inputs import commands as inputs
from l2h.labels import commands as labels
from l2h.maps import commands as maps
from l2h.model import commands as model
from l2h.sampling import commands as sampling
from l2h.view import commands as view

log = logging.getLogger("l2h")


def build_parser() -> argparse.ArgumentParser:
    """The `l2h` parser with every stage's subcommands."""
    parser = argparse.ArgumentParser(
        prog="l2h", description="1 m land-cover mapping from 10 m products, OSM roads and ~1 m imagery "
                                "(L2HNet). Each subcommand is one step of the Snakemake workflow.")
    parser.add_argument("--version", action="version", version=f"l2h {__version__}")
    parser.add_argument("--log", metavar="FILE", help="also write log messages to FILE (appended)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug-level messages")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for stage in (demo, inputs, labels, sampling, model, maps, evaluation, catalog, view):  # the pipeline's order
        stage.register(sub)
    return parser


def _setup_logging(verbose: bool, logfile: str | None) -> None:
    handlers: list[logging.Handler] = [logging.StreamHandler(sys.stderr)]
    if logfile:
        Path(logfile).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(logfile, encoding="utf-8"))
    for handler in handlers:  # secrets are hidden by value in every line, whoever logs it
        handler.addFilter(RedactingFilter())
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=handlers, force=True,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")


def handler_of(subcommand: str):
    """The function that runs ``l2h <subcommand>`` (for :func:`l2h.core.provenance.code_version`)."""
    handlers = _handlers()
    if subcommand not in handlers:
        raise ValueError(f"no l2h subcommand {subcommand!r}; known: {', '.join(sorted(handlers))}")
    return handlers[subcommand]


@functools.cache
def _handlers() -> dict:
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {name: sub.get_default("func") for name, sub in action.choices.items()}
    raise ValueError("the l2h parser has no subcommands")


def _os_error_line(exc: OSError) -> str:
    """One line for a file-system or GDAL error: the file it names, what went wrong, and GDAL's own
    message (which names the dataset) when rasterio only says "Read failed. See previous exception"."""
    where = f"{exc.filename}: " if exc.filename else ""
    text = exc.strerror if exc.errno and exc.strerror else str(exc)
    cause = exc.__cause__ or exc.__context__  # GDAL's last error: it names the dataset and band
    if cause is not None and not exc.filename and str(cause) not in text:
        text = f"{text.removesuffix(' See previous exception for details.')} {cause}"
    return " ".join(f"{where}{text}".split())


INTERRUPTED = 130  # the exit status of a command ended by SIGINT (Ctrl-C): 128 + 2, as shells report it


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `l2h` console script; returns the process exit code.

    Ctrl-C (SIGINT) ends any command with one line and exit status 130: every file is written under a
    temporary name and renamed when whole, so an interrupted command leaves nothing broken under a final
    name, and the same command run again finishes the job (``infer`` keeps the blocks it had finished)."""
    try:
        args = build_parser().parse_args(argv)
        _setup_logging(args.verbose, args.log)
    except KeyboardInterrupt:
        print("l2h: interrupted", file=sys.stderr)
        return INTERRUPTED
    try:
        args.func(args)
    except KeyboardInterrupt:
        log.error("%s: interrupted", args.command)
        return INTERRUPTED
    except L2HError as exc:
        log.error("%s", exc)
        return 1
    except OSError as exc:  # a full disk, a read-only or missing folder, an unreadable raster (rasterio's too)
        log.error("%s", _os_error_line(exc))
        return 1
    except ModuleNotFoundError as exc:
        if (exc.name or "l2h").split(".")[0] == "l2h":
            raise  # l2h's own module: a bug, with its traceback
        # a package the environment lacks, e.g. onnxruntime, which comes as the cpu or gpu extra
        log.error("%s needs the Python package providing %s, which this environment lacks: make install "
                  "(ONNXRUNTIME=gpu on a GPU machine), or pip install 'l2h[cpu]' / 'l2h[gpu]' for onnxruntime",
                  args.command, exc.name)
        return 1
    return 0


if __name__ == "__main__":  # `python -m l2h.cli`, as `python -m l2h`
    sys.exit(main())
