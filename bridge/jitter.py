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
    too.

Re-alignment (two senders' clocks are never the same, and senders pause):
  * a track's *new* audio (starting at or after the newest audio it sent) that lands behind what was already
    concealed for it (it was idle, or paused with its `t` stopped) is moved later, to where the track stands now,
    instead of being refused as late from then on; only a chunk older than the track's newest audio is `late`;
  * the avatar's voice ("self") is the session's clock: while both tracks stream in real time, the partner
    ("other") follows it. Each track's lateness (arrival minus where its audio lands) has a floor, its minimum over
    the last `skew_window_s` (network jitter only ever adds to it). When the partner's floor is more than
    `max_skew_s` above the voice's (its clock runs slow, or it comes later), silence goes into the partner; when it
    is more than one partner chunk (plus `max_skew_s`) below (its clock runs fast), the partner's oldest waiting
    audio is dropped. Both in whole partner chunks. So a drifting partner neither holds the lips back nor piles up,
    and the voice is never cut or padded while it streams. Every move is counted per track (`realigned`,
    `realigned_s`; `dropped_s` counts audio that never came out).

Concealment is silence, not a repeat or a fade: the generator turns energy into mouth motion, so invented audio
would invent lip movement, while silence reads as the short pause it is; the step into silence is one sample and
the generator's feature windows (tens of ms) see it as a pause edge, not a click.

Bounds (each refusal is counted under its kind; a refused chunk fixes nothing, not even the track's rate):
  * `t` may only run ahead as real time allows: a chunk that leaves a gap after the track's furthest audio must
    start within `time_slack_s` of the wall time since the session's first audio, or within the wall time since the
    track's previous chunk (a pause with `t` jumping over it), or the track's unfilled gaps beyond that may add up
    to `time_slack_s` (lost chunks of a file sent faster than real time); otherwise `bad_time`. Contiguous audio may
    come as fast as it likes. So a bogus `t` cannot make the worker generate frames of silence for free;
  * a chunk more than `max_ahead_s` past the release point is refused (`bad_time`);
  * a track may hold at most `max_buffer_s` of audio waiting for its partner, and at most `max_pending` chunks
    waiting for a hole before them (`buffer_full`). Every chunk costs O(log n) in the number it waits behind.
"""
from __future__ import annotations

import heapq
from collections import deque

import numpy as np

from backchannel.bridge.protocol import AudioChunk, ProtocolError
from backchannel.models.audio import SAMPLE_RATE, Resampler

SEEN_SEQS = 4096  # how many recent seqs per track are remembered to spot duplicates
PAUSE_CLOCK = 1.05  # a pause may move `t` 5% more than the wall time it took (a sender's clock runs fast)


class TrackBuffer:
    """One track: its chunks on the track's input timeline, resampled in order to 16 kHz.

    Input index i (the resampler's input) sits at session sample origin16 + i * 16000 / rate; a chunk starts at
    input index round(t * rate) - origin_in + shift_in. Re-aligning moves shift_in (new audio lands later) or
    origin16 (silence put in, or waiting audio dropped, at the output)."""

    def __init__(self, name: str):
        self.name = name
        self.rate: int | None = None
        self.resampler: Resampler | None = None
        self.origin16 = 0  # 16 kHz index where the resampler's input index 0 sits (the track may start late)
        self.origin_in = 0
        self.shift_in = 0  # input samples the track was moved later by re-alignment of its new audio
        # chunks beyond a hole: a heap on start, and a heap on arrival for the hole's deadline (lazily cleaned: an
        # id leaves `waiting` when its chunk is fed)
        self.pending: list[tuple[int, int, np.ndarray, float]] = []  # (start_in, id, samples, arrival), start > n_in
        self.by_arrival: list[tuple[float, int]] = []
        self.waiting: set[int] = set()
        self.next_id = 0
        self.pending_samples = 0  # running total, so the buffer's size is O(1) to know
        self.furthest = 0  # input index just past the furthest chunk accepted
        self.real_end: int | None = None  # round(t * rate) just past the newest audio received (not moved by shifts)
        self.unpaid = 0  # input samples of gaps that real time did not allow, not filled since (time_slack_s)
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
        self.concealed = 0  # 16 kHz samples of silence put in for holes, idle stretches and re-alignment
        self.dropped_s = 0.0  # received audio never released: trimmed as already played out, or dropped to re-align
        self.realigned = 0
        self.realigned_s = 0.0
        self.shift_s = 0.0  # net seconds the track's audio lands later than its t says
        # lateness (arrival - where the chunk's end lands, less shift_s) over the last skew_window_s, as running
        # minimum and maximum; since: the first arrival of this run of them
        self.late_min: deque[tuple[float, float]] = deque()
        self.late_max: deque[tuple[float, float]] = deque()
        self.late_since: float | None = None
        self.waited_out = False  # sent nothing while its partner filled the buffer (Aligner.add)

    @property
    def n_in(self) -> int:
        return self.resampler.n_in if self.resampler else 0

    def buffered_s(self) -> float:
        waiting = self.pending_samples / self.rate if self.rate else 0.0
        return waiting + (self.coverage - self.released) / SAMPLE_RATE

    def add(self, chunk: AudioChunk, now: float, release16: int, wall_s: float, max_buffer_s: float,
            limits: "Aligner") -> tuple[float, float] | None:
        """Place a chunk; returns the span (session seconds) it filled, None if all of it was already played out.
        `wall_s`: session seconds real time has reached (wall time since the session's first audio)."""
        if self.rate is not None and chunk.rate != self.rate:
            raise ProtocolError("rate_changed", f"track {self.name} changed rate {self.rate} -> {chunk.rate} Hz; "
                                                "close and reopen the session to change rates")
        if chunk.seq in self.seen_set:
            raise ProtocolError("duplicate", f"track {self.name} seq {chunk.seq} arrived twice")
        rate, n = chunk.rate, len(chunk.samples)
        # the first chunk accepted fixes the track's rate and origin (one refused fixes nothing): silence so far
        # stays silence, the resampler starts there
        origin16 = self.origin16 if self.rate else self.coverage
        origin_in = self.origin_in if self.rate else round(origin16 * rate / SAMPLE_RATE)
        raw = round(chunk.t * rate)
        start = raw - origin_in + self.shift_in
        n_in = self.n_in
        # new audio (not older than the newest this track sent) behind what was concealed for it: the track was idle
        # or paused with its t stopped, and it goes on from here rather than being refused as late from now on.
        # Only with nothing pending: a chunk behind a hole is older than the chunks after the hole.
        # Within 1 ms it is rounding of t (or the resampler's look-ahead concealed): trimmed as an overlap, since
        # re-aligning by a sample at a time would add up to a drift.
        tolerance = rate // 1000
        new = self.real_end is None or raw >= self.real_end - tolerance
        shift = n_in - start if n and new and start < n_in - tolerance and not self.pending else 0
        start += shift
        to_s = lambda i: origin16 / SAMPLE_RATE + i / rate  # noqa: E731  input index -> session seconds

        ahead = to_s(start) - release16 / SAMPLE_RATE
        if ahead > limits.max_ahead_s:
            raise ProtocolError("bad_time", f"t={chunk.t:.3f} is {ahead:.1f} s ahead of the session (limit "
                                            f"{limits.max_ahead_s:g} s); t counts seconds of audio since the "
                                            "session's start")
        if chunk.duration > max_buffer_s:
            raise ProtocolError("buffer_full", f"a chunk of {chunk.duration:.1f} s is longer than a track may buffer "
                                               f"({max_buffer_s:g} s, max_buffer_s); send shorter chunks")
        if self.buffered_s() + chunk.duration > max_buffer_s:
            raise ProtocolError("buffer_full", f"track {self.name} holds over {max_buffer_s:g} s of audio waiting "
                                               "for its partner track")
        # A gap after the furthest audio is silence the worker would generate frames for: only as much as real time
        # allows (else a few bytes with a bogus t buy seconds of frames), with `time_slack_s` of unfilled gaps
        # beyond that for the lost chunks of a file sent faster than real time.
        furthest = max(n_in, self.furthest)
        gap = start - furthest
        slack_paid = False
        if gap > 0 and not (to_s(start) <= wall_s + limits.time_slack_s or self.last_arrival is not None
                            and gap <= PAUSE_CLOCK * (now - self.last_arrival) * rate):
            if self.unpaid + gap > limits.time_slack_s * rate:
                raise ProtocolError("bad_time", f"t={chunk.t:.3f} jumps {gap / rate:.2f} s past track {self.name}'s "
                                                "audio, further ahead than the wall time since allows; t counts "
                                                "seconds of audio since the session's start")
            slack_paid = True
        if start > n_in and len(self.pending) >= limits.max_pending:
            raise ProtocolError("buffer_full", f"track {self.name} holds {limits.max_pending} chunks waiting for "
                                               "earlier audio that has not come (max_pending)")

        if self.rate is None:
            self.rate, self.origin16, self.origin_in = rate, origin16, origin_in
            self.resampler = Resampler(rate, SAMPLE_RATE)
        self._remember(chunk.seq)
        if shift:
            self.shift_in += shift
            self._moved(shift / rate)
            self.forget_lateness()  # its t no longer says when it arrives as it did
        samples = chunk.samples
        if start < n_in:  # a straggler: what was already played out is dropped
            samples, start = samples[n_in - start:], n_in
        if len(samples) == 0:
            if n:
                raise ProtocolError("late", f"track {self.name} seq {chunk.seq} (t={chunk.t:.3f}) arrived after its "
                                            "time was released")
            return None
        self.dropped_s += (n - len(samples)) / rate
        end = start + len(samples)
        if self.unpaid and start < furthest:  # filling a gap pays it back
            self.unpaid -= min(self.unpaid, min(end, furthest) - start)
        if slack_paid:
            self.unpaid += gap
        self.furthest = max(self.furthest, end)
        self.real_end = raw + n if self.real_end is None else max(self.real_end, raw + n)
        self.last_arrival, self.last_span = now, chunk.duration
        self.received_s += len(samples) / rate
        self.end16 = max(self.end16, self.origin16 + -(-end * SAMPLE_RATE // rate))
        heapq.heappush(self.pending, (start, self.next_id, samples, now))
        heapq.heappush(self.by_arrival, (now, self.next_id))
        self.waiting.add(self.next_id)
        self.next_id += 1
        self.pending_samples += len(samples)
        self._advance()
        lateness = now - chunk.t - chunk.duration  # shift_s is taken off when read, so moves need no rewrite
        self._expire(now, limits.skew_window_s)
        _push_extreme(self.late_min, now, lateness, min)
        _push_extreme(self.late_max, now, lateness, max)
        self.late_since = now if self.late_since is None else self.late_since
        return to_s(start), to_s(end)

    def _remember(self, seq: int) -> None:
        if len(self.seen) == self.seen.maxlen:
            self.seen_set.discard(self.seen[0])
        self.seen.append(seq)
        self.seen_set.add(seq)

    def _oldest_arrival(self) -> float:
        while self.by_arrival[0][1] not in self.waiting:  # drop the entries of chunks already fed
            heapq.heappop(self.by_arrival)
        return self.by_arrival[0][0]

    def _push(self, x: np.ndarray) -> None:
        y = self.resampler.process(x)
        if len(y):
            self.out.append(y)
            self.coverage += len(y)

    def _advance(self, now: float = 0.0, jitter_s: float | None = None) -> None:
        """Feed every pending chunk that continues the timeline; with `jitter_s`, also conceal each hole whose
        deadline passed (`jitter_s` after the earliest chunk beyond it arrived). One resampler call for all."""
        pieces, pos, gaps = [], self.n_in, 0
        while self.pending:
            if self.pending[0][0] > pos:
                if jitter_s is None or now < self._oldest_arrival() + jitter_s:
                    break
                gaps += self.pending[0][0] - pos
                pieces.append(np.zeros(self.pending[0][0] - pos, np.float32))
                pos = self.pending[0][0]
            start, cid, samples, _ = heapq.heappop(self.pending)
            self.waiting.discard(cid)
            self.pending_samples -= len(samples)
            rest = samples[pos - start:]  # overlapping chunks: the earlier one wins
            self.dropped_s += (len(samples) - len(rest)) / self.rate
            if len(rest):
                pieces.append(rest)
                pos += len(rest)
        if not self.waiting:
            self.by_arrival.clear()
        if pieces:
            self._push(np.concatenate(pieces) if len(pieces) > 1 else pieces[0])
            self.concealed += gaps * SAMPLE_RATE // self.rate

    def conceal_holes(self, now: float, jitter_s: float) -> None:
        """Give up on a hole once audio after it has waited `jitter_s`."""
        if self.pending:
            self._advance(now, jitter_s)

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

    def insert_silence(self, n16: int) -> None:
        """Re-align later: `n16` samples of silence at the end of what the track covers; its later audio lands
        that much later."""
        self.out.append(np.zeros(n16, np.float32))
        self.coverage += n16
        self.end16 += n16
        self.origin16 += n16
        self.concealed += n16
        self._moved(n16 / SAMPLE_RATE)

    def drop_oldest(self, n16: int) -> None:
        """Re-align earlier: drop the `n16` oldest samples waiting for release; its later audio lands that much
        earlier."""
        x = np.concatenate(self.out)
        self.out = [x[n16:]]
        self.coverage -= n16
        self.end16 -= n16
        self.origin16 -= n16
        self.dropped_s += n16 / SAMPLE_RATE
        self._moved(-n16 / SAMPLE_RATE)

    def _moved(self, seconds: float) -> None:
        self.shift_s += seconds
        self.realigned += 1
        self.realigned_s += abs(seconds)

    def lateness(self, now: float, window_s: float) -> tuple[float, float] | None:
        """(floor, spread) of the track's lateness over the last `window_s`, once it has streamed twice that long:
        the floor is its latency without the network's jitter (which only ever adds delay), the spread how far it
        is from real time (a file sent faster than real time spreads by all it ran ahead). The first window is left
        out: a session's start (the worker opening its stream between its two tracks' first chunks) delays one
        track's first arrivals, not its clock."""
        self._expire(now, window_s)
        if self.late_since is None or now - self.late_since < 2 * window_s:
            return None
        return self.late_min[0][1] - self.shift_s, self.late_max[0][1] - self.late_min[0][1]

    def _expire(self, now: float, window_s: float) -> None:
        for q in (self.late_min, self.late_max):
            while q and q[0][0] < now - window_s:
                q.popleft()
        if not self.late_min:  # it stopped sending for a whole window: its next run starts afresh
            self.late_since = None

    def forget_lateness(self) -> None:
        self.late_min.clear()
        self.late_max.clear()
        self.late_since = None

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
    """The two tracks of one session, released together. Knobs (module docstring): `jitter_s` the waiting deadline;
    `max_ahead_s`, `max_buffer_s`, `max_pending`, `time_slack_s` the bounds; `max_skew_s`, `skew_window_s` how
    closely and over what window the partner follows the voice's clock."""

    def __init__(self, jitter_s: float = 0.04, max_ahead_s: float = 30.0, max_buffer_s: float = 10.0,
                 max_pending: int = 4096, time_slack_s: float = 1.0, max_skew_s: float = 0.02,
                 skew_window_s: float = 0.5):
        # when the session's first chunk arrived: a session may be opened long before anyone speaks, and a track not
        # heard from yet may only be given up on jitter_s after the other started
        self.first_audio: float | None = None
        self.jitter_s, self.max_ahead_s, self.max_buffer_s = jitter_s, max_ahead_s, max_buffer_s
        self.max_pending, self.time_slack_s = max_pending, time_slack_s
        self.max_skew_s, self.skew_window_s = max_skew_s, skew_window_s
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
        wall_s = 0.0 if self.first_audio is None else now - self.first_audio
        span = track.add(chunk, now, self.released, wall_s,
                         self.max_buffer_s + (chunk.duration if overflow else 0.0), self)
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
        idle = {name: tr.idle(now, self.first_audio, self.jitter_s) for name, tr in self.tracks.items()}
        if not any(idle.values()):
            self._follow_voice(now)
        waiting = [tr for name, tr in self.tracks.items() if not idle[name]]
        target = min(tr.coverage for tr in waiting) if waiting else max(tr.end16 for tr in tracks)
        out = self._release_to(target)
        self.forced = sum(tr.concealed for tr in tracks) > concealed
        return out

    def _follow_voice(self, now: float) -> None:
        """Keep the partner on the voice's clock (see the module's docstring), both streaming in real time."""
        voice = self.tracks["self"].lateness(now, self.skew_window_s)
        other = self.tracks["other"]
        partner = other.lateness(now, self.skew_window_s)
        if voice is None or partner is None or max(voice[1], partner[1]) > self.skew_window_s / 2:
            return
        skew = partner[0] - voice[0]  # > 0: the partner's audio comes later than the voice's for the same time
        # Moves are whole partner chunks, so its chunks keep ending where they did relative to the voice's; and the
        # partner may run up to one chunk early (after a move, or a re-aligned chunk that starts where the release
        # stands although it arrived when its end was recorded): its audio then waits at most a chunk.
        chunk = max(1, round(other.last_span * SAMPLE_RATE))
        if skew > self.max_skew_s:  # the voice would wait: the partner gets silence and lands later
            other.insert_silence(-(-round(skew * SAMPLE_RATE) // chunk) * chunk)
        elif skew < -self.max_skew_s - chunk / SAMPLE_RATE:  # the partner would pile up: it skips its oldest audio
            drop = min(round(-skew * SAMPLE_RATE) // chunk * chunk, other.coverage - self.released)
            if drop > 0:
                other.drop_oldest(drop)

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

    def received_s(self) -> float:
        """The most audio either track has sent (seconds)."""
        return max(track.received_s for track in self.tracks.values())

    def stats(self) -> dict:
        return {name: {"rate": tr.rate, "received_s": round(tr.received_s, 3),
                       "concealed_s": round(tr.concealed / SAMPLE_RATE, 3), "buffered_s": round(tr.buffered_s(), 3),
                       "dropped_s": round(tr.dropped_s, 3), "realigned": tr.realigned,
                       "realigned_s": round(tr.realigned_s, 3)}
                for name, tr in self.tracks.items()}


def _push_extreme(window: deque, when: float, value: float, better) -> None:
    """Append to a running min (or max) window: values that can never be the extreme again are dropped, so the
    front is the extreme and each value costs O(1) on average."""
    while window and better(window[-1][1], value) == value:
        window.pop()
    window.append((when, value))
