"""Peers: the lip-sync tools a user could install from the registries instead, scored by `eval` beside ours.

Each reads the avatar's own track only, offline and whole (none streams), and draws the mouth through a viseme
set; `VISEME_TO_ARKIT` turns those visemes into ARKit weights, so the metrics read them as they read ours. Peers
move only the mouth: no head, eyes or brows, and no listening (the role they show is speaking wherever their mouth
moves). Their packages are the `peers` extra, never a runtime dependency; each runs offline from its wheel.

- `openfacefx-energy`: openfacefx's audio-only energy mode (`generate_from_energy`, its defaults): loudness opens
  `aa`, a little of it spreads into `E` and `O`. It knows no phones (its own docs say it is not lip sync).
- `pocketsphinx-openfacefx`: pocketsphinx's phone decoding with the en-us acoustic model and phone language model in
  its wheel (allphone mode, with the settings CMU's phoneme-recognition guide gives), through openfacefx's
  phone-timestamp adapter (`from_phone_timestamps`) and its coarticulated viseme pipeline
  (`generate_from_alignment`).

- `pylipsync`: pylipsync 0.2.1, uLipSync's method in Python, with the profile in its wheel: the MFCCs of a 64 ms
  window centred on each frame against its five vowels' and silence's templates (cosine similarity); the vowels'
  shares, scaled by the window's loudness (log RMS from -2.5 to -1.5), unless silence takes 0.3 of them (its
  defaults). Its vowels draw as the viseme set's (aa, ee, ih, oh, ou -> aa, E, I, O, U). Its metadata pins
  numpy < 2.4, which its code does not need: setup installs it without its dependencies (librosa comes with the
  extra; scipy is the core's).
"""
from __future__ import annotations

import os
import tempfile

import numpy as np

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.motion import BS, FRAME_RATE, IDLE, MOTION_DIM, SPEAKING, frame_count

# The Oculus/Meta 15-viseme set openfacefx draws with, as ARKit weights (L/R shapes both sides). Closed shapes keep
# the lips together (PP presses them, FF tucks the lower lip); vowels open the jaw as wide as their height and
# round or spread the lips. A viseme's weight scales its row; overlapping visemes add, clipped to 0..1.
VISEME_TO_ARKIT: dict[str, dict[str, float]] = {
    "sil": {},
    "PP": {"MouthPress": 0.5, "MouthRollLower": 0.1},
    "FF": {"MouthRollLower": 0.5, "MouthUpperUp": 0.15, "JawOpen": 0.05},
    "TH": {"JawOpen": 0.15, "TongueOut": 0.4},
    "DD": {"JawOpen": 0.2, "MouthStretch": 0.15},
    "kk": {"JawOpen": 0.25, "MouthStretch": 0.1},
    "CH": {"JawOpen": 0.15, "MouthFunnel": 0.5, "MouthPucker": 0.2, "MouthUpperUp": 0.15},
    "SS": {"JawOpen": 0.08, "MouthStretch": 0.3, "MouthSmile": 0.1, "MouthUpperUp": 0.1},
    "nn": {"JawOpen": 0.15, "MouthStretch": 0.1},
    "RR": {"JawOpen": 0.15, "MouthPucker": 0.3, "MouthFunnel": 0.3},
    "aa": {"JawOpen": 0.6, "MouthLowerDown": 0.3},
    "E": {"JawOpen": 0.35, "MouthStretch": 0.3, "MouthLowerDown": 0.2, "MouthUpperUp": 0.1},
    "I": {"JawOpen": 0.2, "MouthStretch": 0.45, "MouthSmile": 0.2, "MouthUpperUp": 0.15},
    "O": {"JawOpen": 0.45, "MouthFunnel": 0.6, "MouthPucker": 0.2},
    "U": {"JawOpen": 0.15, "MouthPucker": 0.7, "MouthFunnel": 0.3},
}
SPEAKING_WEIGHT = 0.1  # non-silent visemes weighing more than this: the peer's mouth is speaking


def viseme_matrix() -> tuple[list[str], np.ndarray]:
    """The viseme names and (visemes, 52) ARKit weights of VISEME_TO_ARKIT."""
    names = list(VISEME_TO_ARKIT)
    w = np.zeros((len(names), 52), np.float32)
    for i, name in enumerate(names):
        for shape, weight in VISEME_TO_ARKIT[name].items():
            for column in (shape,) if shape in BS else (shape + "Left", shape + "Right"):
                w[i, BS[column]] = weight
    return names, w


def visemes_to_motion(weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frames, visemes) weights, in viseme_matrix's order -> motion (frames, 62) and roles."""
    names, w = viseme_matrix()
    motion = np.zeros((len(weights), MOTION_DIM), np.float32)
    motion[:, :52] = np.clip(weights @ w, 0.0, 1.0)
    voiced = np.delete(weights, names.index("sil"), axis=1).sum(1) > SPEAKING_WEIGHT
    return motion, np.where(voiced, SPEAKING, IDLE).astype(np.int8)


def track_to_motion(track, frames: int) -> tuple[np.ndarray, np.ndarray]:
    """An openfacefx FaceTrack (viseme keyframes) sampled at our frame times: motion (frames, 62) and roles."""
    names = list(VISEME_TO_ARKIT)
    t = np.arange(frames) / FRAME_RATE
    weights = np.zeros((frames, len(names)), np.float32)
    for channel in track.channels:
        if channel.name in names and channel.keys:
            keys = sorted(channel.keys, key=lambda k: k.time)
            weights[:, names.index(channel.name)] = np.interp(t, [k.time for k in keys], [k.value for k in keys],
                                                              left=0.0, right=0.0)
    return visemes_to_motion(weights)


def _pcm16(audio: np.ndarray) -> np.ndarray:
    return np.round(np.clip(np.asarray(audio, np.float32), -1, 1) * 32767).astype("<i2")


def openfacefx_energy(self_audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """openfacefx's energy mode on the own voice (it reads a 16-bit WAV, so the clip goes through one)."""
    import soundfile as sf
    from openfacefx.energy import generate_from_energy

    with tempfile.TemporaryDirectory() as tmp:
        wav = os.path.join(tmp, "self.wav")
        sf.write(wav, _pcm16(self_audio), SAMPLE_RATE, subtype="PCM_16")
        track = generate_from_energy(wav, fps=FRAME_RATE, epsilon=0.0)
    return track_to_motion(track, frame_count(len(self_audio) / SAMPLE_RATE))


def decode_phones(self_audio: np.ndarray) -> list[tuple[float, float, str]]:
    """pocketsphinx's phone decoding (ARPAbet, seconds) with the models in its wheel; silences and noises left out."""
    from pocketsphinx import Decoder, get_model_path

    decoder = Decoder(allphone=os.path.join(get_model_path(), "en-us", "en-us-phone.lm.bin"), lm=None,
                      beam=1e-20, pbeam=1e-20, lw=2.0, loglevel="FATAL")
    decoder.start_utt()
    decoder.process_raw(_pcm16(self_audio).tobytes(), full_utt=True)
    decoder.end_utt()
    rate = decoder.config["frate"]
    return [(s.start_frame / rate, (s.end_frame + 1) / rate, s.word) for s in decoder.seg()
            if s.word.isalpha() and s.word != "SIL"]


def pocketsphinx_openfacefx(self_audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from openfacefx.aligners_acoustic import from_phone_timestamps
    from openfacefx.pipeline import generate_from_alignment

    frames = frame_count(len(self_audio) / SAMPLE_RATE)
    phones = decode_phones(self_audio)
    if not phones:  # nothing heard: a still mouth (the adapter refuses an empty list)
        return np.zeros((frames, MOTION_DIM), np.float32), np.full(frames, IDLE, np.int8)
    segments = from_phone_timestamps(phones, alphabet="arpabet", timing="start_end")
    return track_to_motion(generate_from_alignment(segments, fps=FRAME_RATE, epsilon=0.0), frames)


VOWEL_TO_VISEME = {"aa": "aa", "ee": "E", "ih": "I", "oh": "O", "ou": "U"}  # pylipsync's vowels (uLipSync's A E I O U)


def pylipsync_vowels(self_audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pylipsync's vowel targets, each frame's from the window centred nearest its time (16 kHz is its own rate:
    nothing is resampled). Its windows step a whole number of samples (533), ours 533.3: read by index, they would
    drift a frame behind every 53 s."""
    from pylipsync import PhonemeAnalyzer

    frames = frame_count(len(self_audio) / SAMPLE_RATE)
    names = list(VISEME_TO_ARKIT)
    weights = np.zeros((frames, len(names)), np.float32)
    hop = SAMPLE_RATE // FRAME_RATE
    if len(self_audio) >= hop:  # it refuses less than one step of audio
        segments = PhonemeAnalyzer().extract_phoneme_segments(np.asarray(self_audio, np.float32),
                                                              sample_rate=SAMPLE_RATE, fps=FRAME_RATE)
        # window i is centred on sample i * hop + hop / 2; frame k sits at sample k * SAMPLE_RATE / FRAME_RATE
        nearest = np.round(np.arange(frames) * SAMPLE_RATE / FRAME_RATE / hop - 0.5).astype(int)
        for k, i in enumerate(np.clip(nearest, 0, len(segments) - 1)):
            for phoneme in segments[i].phonemes:
                if phoneme.name in VOWEL_TO_VISEME:
                    weights[k, names.index(VOWEL_TO_VISEME[phoneme.name])] = phoneme.target
    return visemes_to_motion(weights)


PEERS = {"openfacefx-energy": openfacefx_energy, "pocketsphinx-openfacefx": pocketsphinx_openfacefx,
         "pylipsync": pylipsync_vowels}
PEER_PACKAGES = {"openfacefx-energy": "openfacefx", "pocketsphinx-openfacefx": "openfacefx", "pylipsync": "pylipsync"}


def check_installed(name: str) -> None:
    """Imports peer `name`'s package, so a missing one (or a missing dependency of it) is named before any scoring:
    ModuleNotFoundError names the module; an install that does not import is a RuntimeError."""
    import importlib

    package = PEER_PACKAGES[name]
    try:
        importlib.import_module(package)
    except ModuleNotFoundError:
        raise
    except ImportError as e:
        raise RuntimeError(f"the peer {name}'s package {package} does not import: {e}") from e
