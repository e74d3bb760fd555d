"""``adamlab explore``: a local web page to race the optimizers with sliders, or (--export) that
page as static files."""

import argparse
import sys
import webbrowser

from ..lab import explore as lab


def _port(text: str) -> int:
    """An argparse type for --port: a whole number from 0 to 65535."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number from 0 to 65535, got {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"must be from 0 to 65535 (0: any free port), got {port}")
    return port


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "explore", help="a local web page: race the optimizers and move their knobs with sliders",
        description="Serve a web page on this machine where you pick a problem and optimizers, move "
                    "sliders (learning rate, beta1, beta2, eps, weight decay, steps) and watch the "
                    "trajectories, losses and, on one parameter, Adam's internals redraw. Every number "
                    "is computed by adamlab; the page only draws. Serves until Ctrl-C.")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=_port, default=8765, help="port to listen on (default 8765; 0: any free port)")
    parser.add_argument("--open", action="store_true", help="open the page in a web browser")
    parser.add_argument("--export", metavar="DIR",
                        help="write the page into DIR as static files (index.html and static/) instead of "
                             "serving it: the views computed in the page work from file:// or any web host; "
                             "the races need this command's server. DIR must be new or an earlier export")
    parser.set_defaults(run=run)


def run(args) -> int:
    if args.export is not None:
        folder = lab.export(args.export)  # a path in the way: ValueError, exit status 2
        print(f"adamlab explore: the page is in {folder}; open {folder / 'index.html'}")
        return 0
    if not lab.is_loopback(args.host):
        # Anyone who can reach the port can make this machine run races: say so once.
        print(f"adamlab explore: warning: {args.host} is not a loopback address; other machines may "
              f"reach this page", file=sys.stderr)
    server = lab.ExplorerServer(args.host, args.port)  # a port in use: ValueError, exit status 2
    try:
        print(f"adamlab explore: serving on {server.url} (Ctrl-C to stop)", flush=True)
        if args.open:
            webbrowser.open(server.url)
        server.serve_forever()
    except KeyboardInterrupt:
        print("adamlab explore: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0
