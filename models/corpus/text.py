"""What the synthetic speakers say: English conversational sentences from a small grammar, pseudo-words for
every other language (read by that language's own spelling rules, or as espeak phoneme mnemonics for
languages not written in Latin letters), and short backchannels.

The lips are learned from phones, not meaning, so pseudo-words in the language's sound system serve as well as
real text and keep the corpus multilingual without shipping text corpora.
"""
from __future__ import annotations

import numpy as np

# Languages espeak-ng reads from Latin letters without switching to English (checked with espeak-ng 1.51).
LATIN_LANGUAGES = ("de", "fr", "es", "it", "pt", "pt-br", "nl", "sv", "da", "nb", "fi", "pl", "cs", "sk", "hu",
                   "ro", "hr", "sl", "tr", "id", "ms", "sw", "ca", "eu", "et", "lv", "lt", "af", "cy", "is", "eo",
                   "la", "sq", "az", "ht", "qu", "gn", "om")
# Languages given espeak phoneme input ([[...]]): other scripts, or tones the spelling would need.
PHONEME_LANGUAGES = ("ru", "uk", "bg", "el", "hi", "bn", "ta", "te", "ar", "fa", "he", "ja", "cmn", "yue", "ko",
                     "th", "vi", "ka", "hy", "am", "ur", "kk", "ne", "si", "my")
ENGLISH = ("en-us", "en", "en-gb-scotland", "en-029", "en-gb-x-rp", "en-us-nyc")

_SUBJECTS = ["I", "you", "we", "they", "my brother", "my mother", "the people next door", "Paul", "Maria",
             "our boss", "the kids", "everybody", "nobody", "my best friend", "the team", "Bob", "Emma"]
_VERBS = [("buy", "bought"), ("bring", "brought"), ("meet", "met"), ("play", "played"), ("paint", "painted"),
          ("fix", "fixed"), ("find", "found"), ("move", "moved"), ("build", "built"), ("visit", "visited"),
          ("forget", "forgot"), ("borrow", "borrowed"), ("book", "booked"), ("pack", "packed"),
          ("open", "opened"), ("watch", "watched"), ("make", "made"), ("miss", "missed"), ("keep", "kept")]
_OBJECTS = ["the map", "a new phone", "the blue box", "some bread", "the tickets", "a big problem", "the movie",
            "that book", "my bike", "the whole thing", "a puppy", "the piano", "a better plan", "the budget",
            "some apples", "the window", "a present", "the money", "the mail", "a coffee", "the bus", "the boat"]
_TIMES = ["yesterday", "last week", "this morning", "on Monday", "before lunch", "in the summer", "at midnight",
          "a minute ago", "every day", "maybe tomorrow", "back then", "by the way", "for some reason"]
_PLACES = ["at the market", "in the park", "by the beach", "at my place", "in Boston", "on the bus",
           "at the pub", "upstairs", "in the mountains", "at the museum", "near the bridge", "at work"]
_ADJECTIVES = ["amazing", "boring", "beautiful", "impossible", "pretty bad", "brilliant", "so much fun",
               "a bit weird", "perfect", "completely mad", "probably fine", "really important", "very cheap"]
_OPENERS = ["", "", "", "Well, ", "So, ", "Actually, ", "You know, ", "I mean, ", "Honestly, ", "But ", "Okay, ",
            "Oh, ", "Hmm, ", "Look, ", "Basically, "]
_TEMPLATES = [
    "{open}{subj} {past} {obj} {time}.",
    "{open}{subj} {past} {obj} {place}.",
    "{open}I think {subj} {past} {obj}, but I am not sure.",
    "Did you {verb} {obj} {time}?",
    "Why would {subj} {verb} {obj} {place}?",
    "{open}that was {adj}.",
    "{open}it is {adj}, to be honest.",
    "What do you think about {obj}?",
    "{open}we should {verb} {obj} {place} {time}.",
    "Remember when {subj} {past} {obj} {place}? It was {adj}!",
    "{open}maybe we could {verb} {obj} {time}, if that is okay with you.",
    "Have you seen {obj}? It is {adj}.",
    "{open}my plan is to {verb} {obj} and then go {placeword}.",
    "No way, {subj} {past} {obj}?",
    "{open}I will {verb} {obj} {time}, I promise.",
    "Please {verb} {obj} {place}.",
    "{open}the problem is that {subj} {past} {obj}.",
    "Yes, {subj} {past} {obj} {time}, and it was {adj}.",
]
_PLACEWORDS = ["home", "shopping", "to bed", "back to the office", "somewhere warm", "to the beach", "out"]

EN_BACKCHANNELS = ["uh-huh", "yeah", "right", "okay", "oh", "wow", "I see", "sure", "yes", "really?", "oh really?",
                   "exactly", "yeah, yeah", "true", "no way", "of course", "got it"]
# "mm-hmm" and "hmm" as text get spelled out by every engine here; hum them as phonemes (espeak) or near-words
_EN_HUMS = {"espeak": ["[[@m'h@m]]", "[[h'm:]]", "[[m'hm:]]"], "cmu": ["um hum", "hum", "um hum"]}
_YES = {"de": ["ja", "genau", "achso"], "fr": ["oui", "ah bon", "d'accord"], "es": ["sí", "claro", "vale"],
        "it": ["sì", "certo", "già"], "pt": ["sim", "pois", "claro"], "pt-br": ["sim", "é", "claro"],
        "nl": ["ja", "oké", "precies"], "sv": ["ja", "jaha", "precis"], "da": ["ja", "nå"], "nb": ["ja", "jo"],
        "fi": ["joo", "niin"], "pl": ["tak", "no", "aha"], "cs": ["jo", "ano"], "sk": ["áno", "hej"],
        "hu": ["igen", "persze"], "ro": ["da", "sigur"], "hr": ["da", "aha"], "sl": ["ja", "aha"],
        "tr": ["evet", "tamam"], "id": ["ya", "oh begitu"], "ms": ["ya", "betul"], "sw": ["ndiyo", "sawa"]}

_PHONEME_BACKCHANNELS = ["[[m'm:]]", "[[m'hm:]]", "[[a'ha]]", "[['o:]]", "[[h'm]]", "[[da]]", "[['a:]]", "[['e:]]"]

_LATIN_ONSETS = list("bcdfghjklmnprstvwz") + ["", "", "", "br", "st", "pl", "tr", "gr", "sp", "kl", "fr"]
_VOWELS = list("aeiou") + ["a", "e", "o", "i"]
_CODAS = ["", "", "", "", "n", "s", "l", "r", "m", "t"]
_PH_ONSETS = ["p", "b", "m", "f", "v", "t", "d", "n", "s", "z", "l", "r", "k", "g", "h", "j", "w", "S", "tS",
              "", ""]
_PH_VOWELS = ["a", "e", "i", "o", "u", "a", "e", "o", "@"]
_PH_CODAS = ["", "", "", "n", "m", "s", "l", "r"]


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def english_sentence(rng: np.random.Generator) -> str:
    verb, past = _pick(rng, _VERBS)
    text = _pick(rng, _TEMPLATES).format(
        open=_pick(rng, _OPENERS), subj=_pick(rng, _SUBJECTS), verb=verb, past=past, obj=_pick(rng, _OBJECTS),
        time=_pick(rng, _TIMES), place=_pick(rng, _PLACES), adj=_pick(rng, _ADJECTIVES),
        placeword=_pick(rng, _PLACEWORDS))
    return text[0].upper() + text[1:]


def _pseudo_word(rng: np.random.Generator, onsets, vowels, codas, stress: str = "") -> str:
    n = 1 + min(int(rng.geometric(0.45)), 4)
    stressed = int(rng.integers(n))
    syllables = []
    for i in range(n):
        s = _pick(rng, onsets) + _pick(rng, vowels) + (_pick(rng, codas) if rng.random() < 0.4 else "")
        syllables.append((stress if i == stressed and n > 1 else "") + s)
    return "".join(syllables)


def pseudo_sentence(rng: np.random.Generator, phonemes: bool) -> str:
    """3-12 pseudo-words with commas and sentence punctuation (for intonation); as [[...]] phoneme input when
    `phonemes`, else Latin letters read by the language's rules."""
    n = int(rng.integers(3, 13))
    if phonemes:
        words = [_pseudo_word(rng, _PH_ONSETS, _PH_VOWELS, _PH_CODAS, "'") for _ in range(n)]
    else:
        words = [_pseudo_word(rng, _LATIN_ONSETS, _VOWELS, _CODAS) for _ in range(n)]
    if n > 5 and rng.random() < 0.5:
        words[int(rng.integers(2, n - 2))] += ","
    end = _pick(rng, [".", ".", ".", "?", "!"])
    if phonemes:  # a comma inside [[...]] is not punctuation: split into bracketed groups instead
        return " ".join(f"[[{w.rstrip(',')}]]" + ("," if w.endswith(",") else "") for w in words) + end
    words[0] = words[0].capitalize()
    return " ".join(words) + end


def sentence(rng: np.random.Generator, language: str) -> str:
    if language.startswith("en"):
        return english_sentence(rng)
    return pseudo_sentence(rng, phonemes=language not in LATIN_LANGUAGES)


def backchannel(rng: np.random.Generator, language: str, phoneme_input: bool = True) -> str:
    """A short listener response; `phoneme_input` says whether the engine reads espeak [[...]] mnemonics."""
    if language.startswith("en"):
        hums = _EN_HUMS["espeak" if phoneme_input else "cmu"]
        return _pick(rng, EN_BACKCHANNELS + hums + hums)
    if language not in LATIN_LANGUAGES:
        return _pick(rng, _PHONEME_BACKCHANNELS)
    # hums as phonemes: as text, most languages spell "mm" out letter by letter
    return _pick(rng, _YES.get(language, []) + _PHONEME_BACKCHANNELS)
