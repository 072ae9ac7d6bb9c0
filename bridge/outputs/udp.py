"""What the UDP outputs (Live Link Face, VMC) share: resolving the target, counting what went out."""
from __future__ import annotations

import socket

from backchannel.bridge.outputs import Sink


def udp_target(address: str) -> tuple[int, tuple]:
    """"HOST:PORT" -> (address family, socket address), resolved once rather than on every packet."""
    host, sep, port = address.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r}: expected HOST:PORT")
    try:
        family, _, _, _, sockaddr = socket.getaddrinfo(host.strip("[]"), int(port), type=socket.SOCK_DGRAM)[0]
    except socket.gaierror as e:
        raise ValueError(f"{address!r}: cannot resolve {host}: {e}") from None
    return family, sockaddr


class UdpOutput(Sink):
    """Counts datagrams sent and refused. A refusal (a full send buffer, an unreachable network) is counted, not
    raised: one face frame is not worth stopping the worker. (Nobody listening is no refusal: plain UDP cannot
    tell.)"""

    def __init__(self) -> None:
        self.sent = 0
        self.errors = 0

    def deliver(self, send, *args) -> None:
        try:
            send(*args)
        except OSError:
            self.errors += 1
        else:
            self.sent += 1

    def stats(self) -> dict:
        return {"sent": self.sent, "errors": self.errors}
