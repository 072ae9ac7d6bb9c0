"""Who may reach a worker: ZeroMQ CURVE (encryption and client keys) and the rule that only a loopback worker may
run without it.

A key folder (`backchannel keys DIR`) holds the worker's pair, `server.key` (public: give it to clients) and
`server.key_secret`, and one pair per client, `NAME.key` and `NAME.key_secret` (give the secret to that client
alone). The worker takes the folder and accepts the clients whose public keys are in it.
"""
from __future__ import annotations

import ipaddress
import re
from pathlib import Path

import zmq

from backchannel.bridge.protocol import SESSION_RULE

LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]", "::1")


def is_loopback_host(host: str) -> bool:
    """A name in LOCAL_HOSTS or an IP literal that is loopback (127.0.0.0/8, ::1). Any other name is not, however it
    starts: `127.0.0.1.evil.com` resolves wherever its owner says (DNS rebinding)."""
    if host in LOCAL_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_local(endpoint: str) -> bool:
    """Loopback TCP, or a transport that never leaves the machine (inproc, ipc)."""
    scheme, _, rest = endpoint.partition("://")
    if scheme in ("inproc", "ipc"):
        return True
    host = re.sub(r":[^:\]]*$", "", rest)  # drop the port
    return scheme == "tcp" and is_loopback_host(host)


def make_keys(folder: str | Path, clients: list[str]) -> list[Path]:
    """The worker's key pair (once) and a pair per named client, in `folder`; returns the files written."""
    import zmq.auth

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in ["server", *clients]:
        if not SESSION_RULE.fullmatch(name) or (name == "server" and name in clients):  # named as sessions are
            raise ValueError(f"key name {name!r}: 1-64 of [A-Za-z0-9_.-], not 'server'")
        if (folder / f"{name}.key_secret").exists():
            continue  # never replace a key someone may already hold
        public, secret = zmq.auth.create_certificates(str(folder), name)
        written += [Path(public), Path(secret)]
    return written


MOTION_DOMAIN = "motion"  # the ZAP domain of the worker's PUB socket, where subscribers are counted


class Gatekeeper:
    """The worker's ZAP handler (a thread): CURVE's client keys when given a key folder, and at most
    `max_subscribers` connected to the motion socket at once (each holds up to pub_hwm messages of memory)."""

    def __init__(self, ctx: zmq.Context, folder: str | Path | None, max_subscribers: int):
        import zmq.auth
        from zmq.auth.thread import ThreadAuthenticator

        gate = self
        self.subscribers = 0  # connected to the motion socket, as its monitor counts them (the worker's thread)
        self.max_subscribers = max_subscribers
        self.public = self.secret = None
        if folder is not None:
            folder = Path(folder)
            secret = folder / "server.key_secret"
            if not secret.is_file():
                raise FileNotFoundError(f"{secret} not found: make the keys with `backchannel keys {folder}`")
            self.public, self.secret = zmq.auth.load_certificate(str(secret))
            if not [p for p in folder.glob("*.key") if p.stem != "server"]:
                raise ValueError(f"{folder} holds no client keys: `backchannel keys {folder} --client NAME`")

        class Authenticator(ThreadAuthenticator):
            async def handle_zap_message(self, msg: list[bytes]) -> None:
                if len(msg) >= 6 and msg[2] == MOTION_DOMAIN.encode() and gate.subscribers >= gate.max_subscribers:
                    self._send_zap_reply(msg[1], b"400", b"too many subscribers")
                    return
                await super().handle_zap_message(msg)

        self.auth = Authenticator(ctx)
        self.auth.start()
        if folder is not None:
            # admits every *.key in the folder; the worker's own public key admits nobody who lacks its secret
            for domain in ("*", MOTION_DOMAIN):
                self.auth.configure_curve(domain=domain, location=str(folder))

    def serve(self, sock: zmq.Socket, domain: str = "") -> None:
        """Before bind: CURVE keys (when the worker has them) and the ZAP domain (which turns the gate on for a
        socket without CURVE)."""
        if domain:
            sock.zap_domain = domain.encode()
        if self.secret is not None:
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
