"""`l2h view`: serve a run's maps on a local web page until interrupted (Ctrl-C).

Each handler reads its arguments and calls the stage's functions (imported when it runs, so
that `l2h --help` stays fast); `register` adds the subcommands to the parser."""

from __future__ import annotations

import argparse
import logging
import warnings

from l2h.core.errors import L2HError

log = logging.getLogger(__name__)
LOCAL = ("127.0.0.1", "localhost")


def _view(args: argparse.Namespace) -> None:
    try:
        from l2h.view.layers import find_layers
        from l2h.view.server import ViewerServer, check_web_libraries
    except ImportError as exc:
        raise L2HError(f"view needs the viewer's packages ({exc.name} is missing): `make install`, or "
                       f"pip install 'l2h[view]'") from None

    from rio_tiler.errors import NoOverviewWarning

    # imagery without overviews is shown only from zooms where that costs little (l2h.view.layers)
    warnings.filterwarnings("ignore", category=NoOverviewWarning)
    layers = find_layers(args.root, imagery=args.imagery, configfile=args.configfile)
    check_web_libraries()
    server = ViewerServer(layers, host=args.host, port=args.port)
    if args.host not in LOCAL:
        log.warning("listening on %s: other machines can see the maps; the default is 127.0.0.1", args.host)
    log.info("layers: %s; imagery from %d file(s)", ", ".join(layers.zooms), len(layers.imagery))
    log.info("open %s in a browser (Ctrl-C stops the server)", server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        log.info("viewer stopped")
    finally:
        server.server_close()


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = -1
    if not 0 < port < 65536:
        raise argparse.ArgumentTypeError(f"expected a port number from 1 to 65535, got {text!r}")
    return port


def register(sub: argparse._SubParsersAction) -> None:
    """Add the viewer subcommand to the `l2h` parser."""
    p = sub.add_parser("view", help="look at the run's maps in a browser (a local tile server and page)",
                       description="Serve results/maps/national.tif, its confidence layer and the imagery as "
                                   "map tiles cut from the COGs' overviews (rio-tiler), with the regions' "
                                   "outlines, the legend and a click that tells the class, its confidence and "
                                   "the coarse label, on a Leaflet page at http://127.0.0.1:PORT/.")
    p.add_argument("--root", default=".", help="the project folder holding results/ and resources/")
    p.add_argument("--port", type=_port, default=8000, help="the port to listen on (1-65535)")
    p.add_argument("--host", default="127.0.0.1",
                   help="the IPv4 address to listen on (default only this machine; 0.0.0.0 shares the maps)")
    p.add_argument("--imagery", nargs="+", default=None,
                   help="imagery to show (GDAL datasets); default the run's imagery cache or the "
                        "configuration's imagery.paths")
    p.add_argument("--configfile", default=None,
                   help="the run's configuration over workflow_config.yaml, as given to snakemake")
    p.set_defaults(func=_view)
