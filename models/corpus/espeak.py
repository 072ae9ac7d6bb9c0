"""espeak-ng through its C API (ctypes): audio plus phoneme and word events with their times.

The library keeps global state, so there is one `Espeak` per process (`Espeak.get()`); corpus workers are
processes, each with its own. Phoneme names come back in IPA (espeakINITIALIZE_PHONEME_IPA).
"""
from __future__ import annotations

import ctypes
import ctypes.util
from pathlib import Path

import numpy as np

from backchannel.models.corpus.dsp import resample
from backchannel.models.corpus.utterance import Utterance
from backchannel.models.phones import clean_ipa

# speak_lib.h (API revision 12)
AUDIO_OUTPUT_SYNCHRONOUS = 2
INITIALIZE_PHONEME_EVENTS = 0x0001
INITIALIZE_PHONEME_IPA = 0x0002
EVENT_LIST_TERMINATED, EVENT_WORD, EVENT_MSG_TERMINATED, EVENT_PHONEME = 0, 1, 6, 7
POS_CHARACTER = 1
CHARS_UTF8, PHONEMES = 1, 0x100
PARAM_RATE, PARAM_PITCH, PARAM_RANGE = 1, 3, 4
RATE_MIN, RATE_MAX = 80, 450

# Voiceless stops: espeak emits their phoneme event at the release; the closure silence before it is reported
# inside the previous phone. Forced alignment (and the lips) count the closure as part of the stop.
_VOICELESS_STOPS = frozenset(["p", "t", "k", "q", "c", "ʈ", "tʃ", "ts", "pf", "tɕ", "ʈʂ"])


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # characters from the start of the text, 1-based
        ("length", ctypes.c_int),  # word length in characters (WORD events)
        ("audio_position", ctypes.c_int),  # ms into the generated audio
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),  # union: phoneme name (UTF-8, zero-terminated unless 8 bytes long)
    ]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


def data_dir() -> Path | None:
    """The espeak-ng-data folder (voices, variants), wherever the distribution put it."""
    for d in ("/usr/lib/x86_64-linux-gnu/espeak-ng-data", "/usr/lib/aarch64-linux-gnu/espeak-ng-data",
              "/usr/share/espeak-ng-data", "/usr/local/share/espeak-ng-data", "/usr/lib/espeak-ng-data"):
        if Path(d, "voices").is_dir():
            return Path(d)
    return None


def languages() -> set[str]:
    """The languages espeak-ng speaks (voice names such as `es`, `en-us`; lower case), from its data folder."""
    root = data_dir()
    return {f.name.lower() for f in Path(root, "lang").rglob("*") if f.is_file()} if root else set()


def available() -> bool:
    return (ctypes.util.find_library("espeak-ng") or _find_soname()) is not None


def _find_soname() -> str | None:
    try:
        ctypes.CDLL("libespeak-ng.so.1")
        return "libespeak-ng.so.1"
    except OSError:
        return None


class Espeak:
    _instance: "Espeak | None" = None

    @classmethod
    def get(cls) -> "Espeak":
        if cls._instance is None:
            cls._instance = cls()
        return cls._instance

    def __init__(self) -> None:
        name = ctypes.util.find_library("espeak-ng") or _find_soname()
        if name is None:
            raise RuntimeError("espeak-ng library not found (install espeak-ng / libespeak-ng1)")
        self.lib = ctypes.CDLL(name)
        self.lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                          ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.rate = self.lib.espeak_Initialize(AUDIO_OUTPUT_SYNCHRONOUS, 0, None,
                                               INITIALIZE_PHONEME_EVENTS | INITIALIZE_PHONEME_IPA)
        if self.rate <= 0:
            raise RuntimeError("espeak-ng failed to initialise (espeak-ng-data missing?)")
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _CALLBACK(self._on_synth)  # keep a reference: C holds the pointer
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_synth(self, wav, n, events) -> int:
        if wav and n > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n,)).copy())
        i = 0
        while events[i].type != EVENT_LIST_TERMINATED:
            e = events[i]
            name = bytes(e.id).split(b"\0")[0].decode("utf-8", "replace") if e.type == EVENT_PHONEME else ""
            self._events.append((e.type, e.audio_position, e.text_position, e.length, name))
            i += 1
        return 0

    def synth(self, text: str, voice: str, rate: int = 175, pitch: int = 50, pitch_range: int = 50) -> Utterance:
        """Speak `text` (plain text; `[[...]]` holds espeak phoneme mnemonics) with `voice` ("de", "en-us+Alicia")."""
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise ValueError(f"espeak-ng has no voice {voice!r}")
        for param, value in ((PARAM_RATE, int(np.clip(rate, RATE_MIN, RATE_MAX))), (PARAM_PITCH, pitch),
                             (PARAM_RANGE, pitch_range)):
            self.lib.espeak_SetParameter(param, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        err = self.lib.espeak_Synth(data, len(data) + 1, 0, POS_CHARACTER, 0, CHARS_UTF8 | PHONEMES, None, None)
        if err != 0:
            raise RuntimeError(f"espeak_Synth failed ({err}) for {text[:40]!r}")
        pcm = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        audio = resample(pcm.astype(np.float32) / 32768.0, self.rate)
        phones, words = _timings(self._events, text, len(pcm) / self.rate, rate)
        return Utterance(audio, phones, words, text)


def _timings(events, text: str, duration: float, rate: int):
    """Phone and word spans from the event list. A phone lasts until the next phoneme event (pauses are events
    with an empty name that end the phone before them); a word owns the phones between its WORD event and the
    next one."""
    stop = min([pos / 1000.0 for typ, pos, _, _, _ in events if typ == EVENT_MSG_TERMINATED] or [duration])
    marks, word_names, word = [], [], -1  # marks: (time, name, word index)
    phoneme_words = text.replace("[[", " ").replace("]]", " ").split() if text.lstrip().startswith("[[") else None
    for typ, pos, text_pos, length, name in events:
        if typ == EVENT_WORD:
            word += 1
            if phoneme_words is not None:  # phoneme input: positions index the mnemonics; name words by them
                word_names.append(phoneme_words[word].replace("'", "").replace(",", "") if word < len(phoneme_words) else "")
            else:
                word_names.append(text[text_pos - 1: text_pos - 1 + length])
        elif typ == EVENT_PHONEME and not name.startswith("("):  # "(en)": a language switch, not a sound
            marks.append((pos / 1000.0, name.replace("ˈ", "").replace("ˌ", ""), word))
    phones, owners = [], []
    for (t, name, w), (t_next, _, _) in zip(marks, marks[1:] + [(stop, "", -1)]):
        if name and clean_ipa(name) and t_next > t + 1e-4:
            phones.append([t, min(t_next, duration), name])
            owners.append(w)
    closure = float(np.clip(0.04 * 175 / max(rate, RATE_MIN), 0.02, 0.06))
    for i, p in enumerate(phones):
        if clean_ipa(p[2]) in _VOICELESS_STOPS:
            prev = phones[i - 1] if i else None
            if prev is not None and abs(prev[1] - p[0]) < 1e-4:  # contiguous: take the closure from its end
                c = min(closure, 0.5 * (prev[1] - prev[0]))
                prev[1] -= c
            else:
                c = min(closure, p[0] - (prev[1] if prev else 0.0))
            p[0] -= c
    phones = [(round(a, 4), round(b, 4), n) for a, b, n in phones]
    words = []
    for w, name in enumerate(word_names):
        mine = [p for p, o in zip(phones, owners) if o == w]
        name = name.strip("[]'\",.;:!?")
        if mine and name:
            words.append((mine[0][0], mine[-1][1], name))
    return phones, words
