"""`backchannel keys`: the key pairs a worker run with --curve needs, and one per client."""
from __future__ import annotations


def register(commands) -> None:
    p = commands.add_parser("keys", help="make ZeroMQ CURVE keys for a worker and its clients (serve --curve)",
                            description="Writes server.key / server.key_secret (the worker's) and NAME.key / "
                                        "NAME.key_secret per client into DIR; keys already there are kept. The worker "
                                        "takes DIR (serve --curve DIR) and admits every client key in it; each client "
                                        "gets server.key and its own NAME.key_secret (send --server-key/--client-key).")
    p.add_argument("folder", metavar="DIR")
    p.add_argument("--client", action="append", default=[], metavar="NAME", help="a client to make keys for (repeat)")
    p.set_defaults(func=keys_command)


def keys_command(args) -> int:
    from backchannel.bridge.security import make_keys

    written = make_keys(args.folder, args.client)
    print("\n".join(f"wrote {path}" for path in written) or f"{args.folder} already holds these keys")
    return 0
