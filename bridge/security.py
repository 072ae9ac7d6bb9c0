"""Who may reach a worker: ZeroMQ CURVE (encryption and client keys) and the rule that only a loopback worker may
run without it.

A key folder (`backchannel keys DIR`) holds the worker's pair, `server.key` (public: give it to clients) and
`server.key_secret`, and one pair per client, `NAME.key` and `NAME.key_secret` (give the secret to that client
alone). The worker takes the folder and accepts the clients whose public keys are in it.
"""
from __future__ import annotations

import re
from pathlib import Path

import zmq

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_local(endpoint: str) -> bool:
    """Loopback TCP, or a transport that never leaves the machine (inproc, ipc)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("inproc", "ipc"):
        return True
    host = re.sub(r":[^:\]]*$", "", rest)  # drop the port
    return scheme == "tcp" and (host in LOCAL_HOSTS or host.startswith("127."))


def make_keys(folder: str | Path, clients: list[str]) -> list[Path]:
    """The worker's key pair (once) and a pair per named client, in `folder`; returns the files written."""
    import zmq.auth

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ["server", *clients]:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", name) or (name == "server" and name in clients):
            raise ValueError(f"key name {name!r}: 1-64 of [A-Za-z0-9_.-], not 'server'")
        if (folder / f"{name}.key_secret").exists():
            continue  # never replace a key someone may already hold
        public, secret = zmq.auth.create_certificates(str(folder), name)
        written += [Path(public), Path(secret)]
    return written


class Curve:
    """The worker's side: its secret key, and an authenticator thread that admits the folder's client keys."""

    def __init__(self, ctx: zmq.Context, folder: str | Path):
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        folder = Path(folder)
        secret = folder / "server.key_secret"
        if not secret.is_file():
            raise FileNotFoundError(f"{secret} not found: make the keys with `backchannel keys {folder}`")
        self.public, self.secret = zmq.auth.load_certificate(str(secret))
        clients = [p for p in folder.glob("*.key") if p.stem != "server"]
        if not clients:
            raise ValueError(f"{folder} holds no client keys: `backchannel keys {folder} --client NAME`")
        self.auth = ThreadAuthenticator(ctx)
        self.auth.start()
        # the authenticator reads every *.key in the folder; the worker's own public key admits nobody who lacks
        # its secret, so the folder can be the one `keys` wrote
        self.auth.configure_curve(domain="*", location=str(folder))

    def serve(self, sock: zmq.Socket) -> None:
        sock.curve_secretkey, sock.curve_publickey, sock.curve_server = self.secret, self.public, True

    def close(self) -> None:
        self.auth.stop()


def connect_with_keys(sock: zmq.Socket, server_key: str | Path, client_secret: str | Path) -> None:
    """A client socket's CURVE keys (call before connect): the worker's public key and the client's own pair."""
    import zmq.auth

    server_public, _ = zmq.auth.load_certificate(str(server_key))
    public, secret = zmq.auth.load_certificate(str(client_secret))
    if secret is None:
        raise ValueError(f"{client_secret} holds no secret key (give NAME.key_secret)")
    sock.curve_serverkey, sock.curve_publickey, sock.curve_secretkey = server_public, public, secret
