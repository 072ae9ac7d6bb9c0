"""Phones, language-independently: every source reports IPA, and this module says how each IPA symbol shapes the
mouth (the articulatory targets the lip labels blend).

espeak-ng reports IPA directly; festival, flite and pocketsphinx speak ARPAbet, which `arpabet_to_ipa` converts.
An IPA phone name may hold several symbols (a diphthong "aɪ", an affricate "tʃ", "ɛɹ"), diacritics, length and
stress marks and tone digits; `articulations` splits a name into the shapes it passes through.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

# The articulatory parameters the lip labels blend; each in [0, 1], 0 = rest (mouth closed, neutral face).
PARAMS = ("jaw", "closure", "press", "pucker", "funnel", "spread", "tuck", "tongue", "raise")
# jaw: jaw opening; closure: lips in contact; press: lips pressed; pucker: protruded rounding (u, w);
# funnel: open rounding (o, sh); spread: lip corners back (i, e); tuck: lower lip under the upper teeth (f, v);
# tongue: tongue tip between the teeth (th); raise: lips drawn off the teeth (s, sh).

BILABIAL_CLOSURES = frozenset("pbm")  # the P/B/M phones whose lips must meet (quality bar and model eval)
# Stops and nasals closed by the tongue: they silence the voice or hum it through the nose as P/B/M do, with the lips
# apart. Lips that shut on these are shutting on any closure they hear, not on the lips' own (model eval).
TONGUE_CLOSURES = frozenset("tdkɡgnŋcɟɲʈɖɳqɢɴ")


@dataclass(frozen=True)
class Articulation:
    """One mouth shape: targets for some parameters (the others rest at 0). `kind` picks how strongly the shape
    claims the jaw and the parameters it does not need against its neighbours (visemes._JAW, visemes._PASSIVE)."""

    kind: str  # vowel | bilabial | labial | labiodental | dental | sibilant | postalveolar | rounding | ...
    targets: dict


def _vowel(height: float, front: float, rounded: bool) -> Articulation:
    """height 0 close .. 1 open; front 1 front .. 0 back; rounded lips or not."""
    t = {"jaw": 0.12 + 0.4 * height}
    if rounded:
        t["pucker"] = 0.65 * (1 - height)
        t["funnel"] = 0.25 + 0.35 * min(height, 0.6)
    else:
        t["spread"] = 0.45 * front * (1 - height) + 0.1
    return Articulation("vowel", t)


# IPA vowel chart: symbol -> (height, frontness, rounded)
_VOWELS = {
    "i": (0.0, 1.0, False), "y": (0.0, 1.0, True), "ɨ": (0.0, 0.5, False), "ʉ": (0.0, 0.5, True),
    "ɯ": (0.0, 0.0, False), "u": (0.0, 0.0, True), "ɪ": (0.15, 0.9, False), "ʏ": (0.15, 0.9, True),
    "ʊ": (0.15, 0.1, True), "ᵻ": (0.15, 0.5, False), "ᵿ": (0.15, 0.3, True), "e": (0.3, 1.0, False),
    "ø": (0.3, 1.0, True), "ɘ": (0.3, 0.5, False), "ɵ": (0.3, 0.5, True), "ɤ": (0.3, 0.0, False),
    "o": (0.3, 0.0, True), "ə": (0.45, 0.5, False), "ɚ": (0.45, 0.5, False), "ɛ": (0.6, 1.0, False),
    "œ": (0.6, 1.0, True), "ɜ": (0.6, 0.5, False), "ɝ": (0.6, 0.5, False), "ɞ": (0.6, 0.5, True),
    "ʌ": (0.6, 0.0, False), "ɔ": (0.6, 0.0, True), "æ": (0.8, 1.0, False), "ɐ": (0.75, 0.5, False),
    "a": (1.0, 1.0, False), "ɶ": (1.0, 1.0, True), "ɑ": (1.0, 0.0, False), "ɒ": (1.0, 0.0, True),
    "A": (1.0, 0.5, False),  # espeak's Irish/other fallback letter
}


_BILABIAL_STOP = Articulation("bilabial", {"jaw": 0.06, "closure": 1.0, "press": 0.6})
_BILABIAL_NASAL = Articulation("bilabial", {"jaw": 0.06, "closure": 1.0, "press": 0.3})
_LABIODENTAL = Articulation("labiodental", {"jaw": 0.08, "tuck": 1.0})
_DENTAL = Articulation("dental", {"jaw": 0.14, "tongue": 0.7, "spread": 0.1})
_SIBILANT = Articulation("sibilant", {"jaw": 0.05, "spread": 0.3, "raise": 0.35})
_POSTALVEOLAR = Articulation("postalveolar", {"jaw": 0.07, "pucker": 0.3, "funnel": 0.55, "raise": 0.3})
_CORONAL = Articulation("consonant", {"jaw": 0.16})
_RHOTIC = Articulation("consonant", {"jaw": 0.14, "pucker": 0.2, "funnel": 0.25})
_DORSAL = Articulation("dorsal", {"jaw": 0.22})
_GLOTTAL = Articulation("glottal", {"jaw": 0.25})
_LABIAL_GLIDE = Articulation("rounding", {"jaw": 0.08, "pucker": 0.85, "funnel": 0.2})
_PALATAL_GLIDE = Articulation("consonant", {"jaw": 0.1, "spread": 0.35})
_BILABIAL_FRICATIVE = Articulation("labial", {"jaw": 0.08, "closure": 0.6, "press": 0.1})

_CONSONANTS: dict[str, Articulation] = {}
for chars, art in [
    ("pb", _BILABIAL_STOP), ("mʙ", _BILABIAL_NASAL), ("ɸβ", _BILABIAL_FRICATIVE), ("fvɱʋ", _LABIODENTAL),
    ("θð", _DENTAL), ("szʦʣ", _SIBILANT), ("ʃʒɕʑʂʐʧʤ", _POSTALVEOLAR), ("tdnlɾɬɮʈɖɳɭcɟɲʎɫɺ", _CORONAL),
    ("ɹɻrʀʁ", _RHOTIC), ("kɡgŋxɣχqɢɴçʝħʕ", _DORSAL), ("hɦʔ", _GLOTTAL), ("wʍɥ", _LABIAL_GLIDE),
    ("jɰ", _PALATAL_GLIDE), ("ǀǃǂǁʘɓɗʄɠʛ", _CORONAL),
]:
    for ch in chars:
        _CONSONANTS[ch] = art
_CONSONANTS["ʘ"] = _BILABIAL_STOP  # bilabial click
_CONSONANTS["ɓ"] = _BILABIAL_STOP  # bilabial implosive

# Symbols that carry no articulation of their own: stress, length, tone digits, ties, syllabicity, espeak's
# language switches are removed before lookup; combining diacritics are dropped by the NFD filter below.
_MARKS = set("ˈˌːˑ.‿͡‍ ʰʲʷˠˤ˞ⁿˡ̃ʼ'\",;-_|^~?!0123456789ᵝ")

ARPABET_TO_IPA = {
    "aa": "ɑ", "ae": "æ", "ah": "ʌ", "ao": "ɔ", "aw": "aʊ", "ax": "ə", "axr": "ɚ", "ay": "aɪ", "b": "b",
    "ch": "tʃ", "d": "d", "dh": "ð", "dx": "ɾ", "eh": "ɛ", "el": "əl", "em": "əm", "en": "ən", "er": "ɝ",
    "ey": "eɪ", "f": "f", "g": "ɡ", "hh": "h", "hv": "ɦ", "ih": "ɪ", "ix": "ɨ", "iy": "i", "jh": "dʒ", "k": "k",
    "l": "l", "m": "m", "n": "n", "nx": "n", "ng": "ŋ", "ow": "oʊ", "oy": "ɔɪ", "p": "p", "r": "ɹ", "s": "s",
    "sh": "ʃ", "t": "t", "th": "θ", "uh": "ʊ", "uw": "u", "v": "v", "w": "w", "y": "j", "z": "z", "zh": "ʒ",
}
ARPABET_SILENCE = frozenset({"pau", "sil", "h#", "brth", "+breath+", "<sil>", "<s>", "</s>", "+nsn+", "+spn+"})


def arpabet_to_ipa(phone: str) -> str | None:
    """ARPAbet (any case, stress digits allowed) -> IPA; None for silences and noises."""
    p = phone.lower().rstrip("012")
    if p in ARPABET_SILENCE or not p:
        return None
    if p not in ARPABET_TO_IPA:
        raise ValueError(f"unknown ARPAbet phone {phone!r}")
    return ARPABET_TO_IPA[p]


def clean_ipa(name: str) -> str:
    """Strip stress, length, tone and diacritics, and espeak's "(en)" language-switch markers."""
    while "(" in name and ")" in name[name.index("("):]:
        a = name.index("(")
        name = name[:a] + name[name.index(")", a) + 1:]
    decomposed = unicodedata.normalize("NFD", name)
    return "".join(ch for ch in decomposed if ch not in _MARKS and not unicodedata.combining(ch))


def is_bilabial_closure(name: str) -> bool:
    """True for the phones counted by the P/B/M closure bar: plain bilabial stops and nasals (p, b, m, with any
    aspiration, length or palatalisation marks), not affricates or clusters that merely contain them."""
    return clean_ipa(name) in BILABIAL_CLOSURES


def is_tongue_closure(name: str) -> bool:
    """True for plain stops and nasals made with the tongue (t, d, k, g, n, ng, ...): acoustically like P/B/M, lips
    apart. Affricates and clusters that merely contain them do not count."""
    return clean_ipa(name) in TONGUE_CLOSURES


# Rounding contrast (model eval): lips a viewer should see rounded -- rounded vowels of any height and the labial
# glides (w, ʍ, ɥ) -- against lips drawn back on the spread vowels (front, unrounded, short of fully open: i, ɪ, e,
# ɛ, æ; "a" opens the jaw more than it spreads). Diphthongs count only when every part is of the class (oʊ is
# rounded, eɪ spread, aʊ and ɔɪ neither).
ROUNDED = frozenset(ch for ch, (_, _, rounded) in _VOWELS.items() if rounded) | frozenset("wʍɥ")
SPREAD_VOWELS = frozenset(ch for ch, (height, front, rounded) in _VOWELS.items()
                          if not rounded and front >= 0.9 and height < 1.0)


def is_rounded(name: str) -> bool:
    """True for rounded vowels, rounded diphthongs and w-like glides: phones whose lips pucker or funnel."""
    s = clean_ipa(name)
    return bool(s) and all(ch in ROUNDED for ch in s)


def is_spread_vowel(name: str) -> bool:
    """True for the front unrounded vowels (i, ɪ, e, ɛ, æ and diphthongs of them): lips spread, never rounded."""
    s = clean_ipa(name)
    return bool(s) and all(ch in SPREAD_VOWELS for ch in s)


def is_vowel(name: str) -> bool:
    """True for plain vowels and vowel sequences (diphthongs): phones where the lips have no reason to meet."""
    parts = articulations(name)
    return bool(parts) and all(a.kind == "vowel" for _, a in parts)


def articulations(name: str) -> list[tuple[float, Articulation]]:
    """The mouth shapes an IPA phone name passes through, each with its share of the phone's duration.
    Affricates (t + a fricative) count as the fricative; vowel sequences split the time, the first part longest.
    Unknown symbols fall back to a neutral coronal so no language ever breaks the labels."""
    s = clean_ipa(name)
    parts: list[Articulation] = []
    i = 0
    while i < len(s):
        ch = s[i]
        nxt = s[i + 1] if i + 1 < len(s) else ""
        if ch in "td" and nxt in _CONSONANTS and _CONSONANTS[nxt] in (_SIBILANT, _POSTALVEOLAR):
            parts.append(_CONSONANTS[nxt])  # affricate: the lips show the release, not the stop
            i += 2
            continue
        if ch in _VOWELS:
            parts.append(_vowel(*_VOWELS[ch]))
        elif ch in _CONSONANTS:
            parts.append(_CONSONANTS[ch])
        else:
            parts.append(_CORONAL)
        i += 1
    if not parts:
        return []
    if len(parts) == 1:
        return [(1.0, parts[0])]
    first = 0.55 if parts[0].kind == "vowel" else 1.0 / len(parts)
    rest = (1.0 - first) / (len(parts) - 1)
    return [(first, parts[0])] + [(rest, p) for p in parts[1:]]
