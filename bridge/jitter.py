"""Per-session jitter buffer: places each track's chunks on the session's audio timeline by `t`, resamples them in
order to 16 kHz, conceals what never came, and releases the two tracks aligned, sample for sample.

Placement is by `t` (seconds of audio since the session's start, at the track's own rate), so reordered chunks land
where they belong without trusting arrival order; `seq` only identifies duplicates.

Waiting policy (all deadlines are wall-clock, `jitter_s` after the evidence):
  * audio is released as far as every *waiting* track covers it, so a frame goes out as soon as both tracks hold
    its time plus the generator's look-ahead;
  * a hole inside a track (a chunk lost or still in flight while later ones arrived) is waited for until
    `jitter_s` after the earliest later chunk arrived, then concealed;
  * a track stops holding the other back once it is *idle*: it has sent nothing yet and the session's first audio
    (on either track) came `jitter_s` ago, or its last chunk's audio has had time to be followed (arrival + chunk
    length + `jitter_s`) and nothing followed, or it has sent nothing while the other filled the buffer. An idle
    track is concealed up to where the other track reaches, so a session with one track (a game that only sends the
    avatar's voice) flows with no added delay after the first `jitter_s`, and one sent faster than real time flows
    too. When an idle track sends again it joins at the current position; audio for times already released is
    dropped as late.

Concealment is silence, not a repeat or a fade: the generator turns energy into mouth motion, so invented audio
would invent lip movement, while silence reads as the short pause it is; the step into silence is one sample and
the generator's feature windows (tens of ms) see it as a pause edge, not a click.

Memory is bounded: a chunk more than `max_ahead_s` past the release point is refused (a bogus `t` must not make the
worker generate hours of frames), and a track may hold at most `max_buffer_s` of audio waiting for its partner.
"""
from __future__ import annotations

import bisect
from collections import deque

import numpy as np

from backchannel.bridge.protocol import AudioChunk, ProtocolError
from backchannel.models.audio import SAMPLE_RATE, Resampler

SEEN_SEQS = 4096  # how many recent seqs per track are remembered to spot duplicates


class TrackBuffer:
    """One track: its chunks on the track's input timeline, resampled in order to 16 kHz."""

    def __init__(self, name: str):
        self.name = name
        self.rate: int | None = None
        self.resampler: Resampler | None = None
        self.origin16 = 0  # 16 kHz index where the resampler's input index 0 sits (the track may start late)
        self.origin_in = 0
        self.pending: list[tuple[int, int, np.ndarray, float]] = []  # (start_in, seq, samples, arrival), start >= n_in
        self.out: list[np.ndarray] = []  # resampled, not yet released
        self.coverage = 0  # 16 kHz samples known (released + in self.out)
        self.end16 = 0  # where the track's audio (or concealment) really ends; coverage may run past it at the end,
        # when the resampler's look-ahead is padded with silence
        self.released = 0
        self.last_arrival: float | None = None
        self.last_span = 0.0  # seconds of audio in the last chunk
        self.seen: deque[int] = deque(maxlen=SEEN_SEQS)
        self.seen_set: set[int] = set()
        self.received_s = 0.0
        self.concealed = 0  # 16 kHz samples of silence put in for holes and idle stretches
        self.waited_out = False  # sent nothing while its partner filled the buffer (Aligner.add)

    @property
    def n_in(self) -> int:
        return self.resampler.n_in if self.resampler else 0

    def buffered_s(self) -> float:
        waiting = sum(len(p[2]) for p in self.pending) / self.rate if self.rate else 0.0
        return waiting + (self.coverage - self.released) / SAMPLE_RATE

    def add(self, chunk: AudioChunk, now: float, release16: int, max_ahead_s: float, max_buffer_s: float) -> tuple[float, float] | None:
        """Place a chunk; returns the span (seconds) it filled, None if all of it was already played out."""
        if self.rate is not None and chunk.rate != self.rate:
            raise ProtocolError("rate_changed", f"track {self.name} changed rate {self.rate} -> {chunk.rate} Hz; "
                                                "close and reopen the session to change rates")
        if chunk.seq in self.seen_set:
            raise ProtocolError("duplicate", f"track {self.name} seq {chunk.seq} arrived twice")
        ahead = chunk.t - release16 / SAMPLE_RATE
        if ahead > max_ahead_s:
            raise ProtocolError("bad_time", f"t={chunk.t:.3f} is {ahead:.1f} s ahead of the session (limit "
                                            f"{max_ahead_s:g} s); t counts seconds of audio since the session's start")
        if chunk.duration > max_buffer_s:
            raise ProtocolError("buffer_full", f"a chunk of {chunk.duration:.1f} s is longer than a track may buffer "
                                               f"({max_buffer_s:g} s, max_buffer_s); send shorter chunks")
        if self.buffered_s() + chunk.duration > max_buffer_s:
            raise ProtocolError("buffer_full", f"track {self.name} holds over {max_buffer_s:g} s of audio waiting "
                                               "for its partner track")
        if self.rate is None:  # the first chunk accepted fixes the track's rate (one refused fixes nothing)
            self.rate = chunk.rate
            self.origin16 = self.coverage  # silence so far stays silence; the resampler starts here
            self.origin_in = round(self.origin16 * chunk.rate / SAMPLE_RATE)
            self.resampler = Resampler(chunk.rate, SAMPLE_RATE)
        self._remember(chunk.seq)
        start = round(chunk.t * chunk.rate) - self.origin_in
        samples = chunk.samples
        if start < self.n_in:
            samples = samples[self.n_in - start:]
            start = self.n_in
        if len(samples) == 0:
            if len(chunk.samples):
                raise ProtocolError("late", f"track {self.name} seq {chunk.seq} (t={chunk.t:.3f}) arrived after its "
                                            "time was released")
            return None
        bisect.insort(self.pending, (start, chunk.seq, samples, now), key=lambda p: p[0])
        self.last_arrival, self.last_span = now, chunk.duration
        self.received_s += len(samples) / self.rate
        self.end16 = max(self.end16, self.origin16 + -(-(start + len(samples)) * SAMPLE_RATE // self.rate))
        self._advance()
        to_s = lambda i: (i + self.origin_in) / self.rate  # noqa: E731
        return to_s(start), to_s(start + len(samples))

    def _remember(self, seq: int) -> None:
        if len(self.seen) == self.seen.maxlen:
            self.seen_set.discard(self.seen[0])
        self.seen.append(seq)
        self.seen_set.add(seq)

    def _push(self, x: np.ndarray) -> None:
        y = self.resampler.process(x)
        if len(y):
            self.out.append(y)
            self.coverage += len(y)

    def _advance(self) -> None:
        """Feed every pending chunk that now continues the timeline."""
        while self.pending and self.pending[0][0] <= self.n_in:
            start, _, samples, _ = self.pending.pop(0)
            rest = samples[self.n_in - start:]  # overlapping chunks: the earlier one wins
            if len(rest):
                self._push(rest)

    def conceal_holes(self, now: float, jitter_s: float) -> None:
        """Give up on a hole once audio after it has waited `jitter_s`."""
        while self.pending and now >= min(p[3] for p in self.pending) + jitter_s:
            gap = self.pending[0][0] - self.n_in
            self._push(np.zeros(gap, np.float32))
            self.concealed += gap * SAMPLE_RATE // self.rate
            self._advance()

    def idle(self, now: float, first_audio: float | None, jitter_s: float) -> bool:
        if self.last_arrival is None:
            return self.waited_out or (first_audio is not None and now - first_audio >= jitter_s)
        return not self.pending and now >= self.last_arrival + self.last_span + jitter_s

    def conceal_to(self, target16: int) -> None:
        """Silence until the track covers `target16`, stopping at chunks that are already here."""
        self.end16 = max(self.end16, target16)
        if self.resampler is None:  # never sent: plain 16 kHz silence, no resampler yet
            self.concealed += max(0, target16 - self.coverage)
            if target16 > self.coverage:
                self.out.append(np.zeros(target16 - self.coverage, np.float32))
                self.coverage = target16
            return
        while self.coverage < target16:
            wanted = target16 - self.origin16
            need = wanted if self.rate == SAMPLE_RATE else -(-wanted * self.rate // SAMPLE_RATE) + self.resampler.half + 1
            need -= self.n_in
            if self.pending:
                need = min(need, self.pending[0][0] - self.n_in)
            need = max(need, 1)
            before = self.coverage
            self._push(np.zeros(need, np.float32))
            self.concealed += self.coverage - before
            self._advance()

    def finish(self) -> None:
        """End of the track: flush the resampler's tail (only at session close)."""
        if self.pending:
            self.conceal_holes(float("inf"), 0.0)
        if self.resampler is not None:
            tail = self.resampler.flush()
            if len(tail):
                self.out.append(tail)
                self.coverage += len(tail)

    def take(self, n: int) -> np.ndarray:
        x = np.concatenate(self.out) if len(self.out) != 1 else self.out[0]
        self.out = [x[n:]] if len(x) > n else []
        self.released += n
        return x[:n]


class Aligner:
    """The two tracks of one session, released together."""

    def __init__(self, jitter_s: float = 0.04, max_ahead_s: float = 30.0, max_buffer_s: float = 10.0):
        # when the session's first chunk arrived: a session may be opened long before anyone speaks, and a track not
        # heard from yet may only be given up on jitter_s after the other started
        self.first_audio: float | None = None
        self.jitter_s, self.max_ahead_s, self.max_buffer_s = jitter_s, max_ahead_s, max_buffer_s
        self.tracks = {"self": TrackBuffer("self"), "other": TrackBuffer("other")}
        self.released = 0  # 16 kHz samples handed out per track
        self.forced = False  # whether the last release had to conceal (a deadline passed) rather than just wait

    def add(self, chunk: AudioChunk, now: float) -> tuple[float, float] | None:
        track = self.tracks[chunk.track]
        partner = self.tracks["other" if chunk.track == "self" else "self"]
        # A partner that has sent nothing while this track filled the buffer is given up on: a one-track file sent
        # faster than real time delivers seconds within the first deadline, while a socket kept full holds the
        # deadlines back. This chunk is taken one beyond the limit; the next release conceals the partner.
        overflow = (partner.last_arrival is None and not partner.waited_out
                    and track.buffered_s() + chunk.duration > self.max_buffer_s >= chunk.duration)
        span = track.add(chunk, now, self.released, self.max_ahead_s,
                         self.max_buffer_s + (chunk.duration if overflow else 0.0))
        partner.waited_out |= overflow
        if self.first_audio is None:
            self.first_audio = now
        return span

    def buffered_s(self) -> float:
        """The most audio either track holds, waiting for release."""
        return max(tr.buffered_s() for tr in self.tracks.values())

    def release(self, now: float) -> tuple[np.ndarray, np.ndarray]:
        """Equal-length, aligned 16 kHz audio for both tracks, as far as the waiting policy allows (maybe empty)."""
        tracks = self.tracks.values()
        concealed = sum(tr.concealed for tr in tracks)
        for tr in tracks:
            tr.conceal_holes(now, self.jitter_s)
        waiting = [tr for tr in tracks if not tr.idle(now, self.first_audio, self.jitter_s)]
        target = min(tr.coverage for tr in waiting) if waiting else max(tr.end16 for tr in tracks)
        out = self._release_to(target)
        self.forced = sum(tr.concealed for tr in tracks) > concealed
        return out

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of the session: everything still buffered, holes and the shorter track concealed."""
        for tr in self.tracks.values():
            tr.finish()
        return self._release_to(max(tr.end16 for tr in self.tracks.values()))

    def _release_to(self, target: int) -> tuple[np.ndarray, np.ndarray]:
        n = max(0, target - self.released)
        if n == 0:
            return np.zeros(0, np.float32), np.zeros(0, np.float32)
        for tr in self.tracks.values():
            tr.conceal_to(target)
        self.released = target
        a, b = (self.tracks[name].take(n) for name in ("self", "other"))
        return a, b

    def stats(self) -> dict:
        return {name: {"rate": tr.rate, "received_s": round(tr.received_s, 3),
                       "concealed_s": round(tr.concealed / SAMPLE_RATE, 3), "buffered_s": round(tr.buffered_s(), 3)}
                for name, tr in self.tracks.items()}
