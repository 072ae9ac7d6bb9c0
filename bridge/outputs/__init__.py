"""The worker's outputs besides its own PUB socket: each is a Sink the worker hands every published block."""
from __future__ import annotations

from abc import ABC, abstractmethod

from backchannel.models.motion import MotionBlock


class Sink(ABC):
    """An output the worker drives from its own thread."""

    name = "?"  # its counters' key in the worker's stats (under "outputs")

    @abstractmethod
    def send(self, session: str, block: MotionBlock) -> None:
        """Every block the worker publishes, in order, per session."""

    def publish_ready(self) -> None:
        """Called each tick: outputs made off the worker's thread (rendered frames) go out here, on it."""

    @abstractmethod
    def stats(self) -> dict:
        """Counters for the worker's stats body."""

    def set_tier(self, tier) -> None:
        """The governor moved to another quality tier (bridge/governor.py Tier): follow it where it applies."""

    def close(self) -> None:
        """The worker is stopping: flush and release what the sink holds."""
