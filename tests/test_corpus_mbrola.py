"""MBROLA voices: espeak-ng's phone file laid onto its IPA (hand-made output), and real mbrola speech whose phones
sit where the sound is (where mbrola and a database are installed: scripts/install-mbrola.sh)."""
import re
from pathlib import Path

import numpy as np
import pytest

from backchannel.models.corpus import mbrola
from backchannel.models.corpus.build import _pick_language
from backchannel.models.corpus.festival import WordMatchError
from backchannel.models.corpus.voices import Voice, assign_splits, catalog
from backchannel.models.phones import clean_ipa, is_bilabial_closure

from .test_corpus_voices import level_db

# espeak-ng -q --pho --ipa --sep=_ -v mb-us1 "Big map, near."  (two clauses; "ɪɹ" said as two rows, "i r")
OUTPUT = """b_ˈɪ_ɡ m_ˈæ_p
b\t65
I\t60\t 0 232 80 215
g\t70
m\t65
{\t90\t 0 202 100 207
p\t100
_\t150
_\t1
n_ˈɪɹ
n\t65
i\t80\t 0 198 100 190
r\t60
_\t301
"""


def test_the_phone_file_times_each_ipa_phone():
    pho, phones, words = mbrola.parse_phone_file(OUTPUT, "Big map, near.")
    assert pho.splitlines()[0] == "b\t65" and len(pho.splitlines()) == 12  # the rows mbrola renders, in order
    assert [p[2] for p in phones] == ["b", "ɪ", "ɡ", "m", "æ", "p", "n", "ɪɹ"]
    assert phones[0] == (0.0, 0.065, "b") and phones[5] == (0.35, 0.45, "p")
    assert phones[6] == (0.601, 0.666, "n")  # after the 151 ms pause
    assert phones[7] == (0.666, 0.806, "ɪɹ")  # one IPA phone over its two rows
    assert words == [(0.0, 0.195, "Big"), (0.195, 0.45, "map"), (0.601, 0.806, "near")]


def test_a_phone_file_that_does_not_fit_its_ipa_is_refused():
    with pytest.raises(WordMatchError, match="cannot lay 3 IPA phones onto 4"):  # "t" cannot be said as two rows
        mbrola.parse_phone_file("b_ɪ_t\nb\t65\nI\t60\nt\t40\ns\t50\n", "bit")
    with pytest.raises(WordMatchError, match="cannot lay 3 IPA phones onto 2"):
        mbrola.parse_phone_file("b_ɪ_t\nb\t65\nI\t60\n", "bit")
    # English's linking r: an extra "r" row joins the phone before it (espeak-ng ... "four hours")
    _, phones, _ = mbrola.parse_phone_file(
        "f_ˈoː_ɹ ˈaʊ_ɚ_z\nf\t104\nO\t34\nr\t34\nr\t65\naU\t83\nr=\t56\nz\t65\n_\t301\n", "four hours")
    assert [p[2] for p in phones] == ["f", "oː", "ɹ", "aʊ", "ɚ", "z"] and phones[2] == (0.138, 0.237, "ɹ")
    # an alignment that could only pair a vowel with a consonant is refused, not timed wrong
    with pytest.raises(WordMatchError, match="cannot lay 2 IPA phones onto 3"):
        mbrola.parse_phone_file("s_a\ns\t80\nt\t40\na\t90\n", "sa")
    # espeak-ng's language switches are not sounds
    _, phones, _ = mbrola.parse_phone_file("(en)_w_ɒ_(fr) m_a\nw\t50\nO\t60\nm\t40\na\t70\n", "wob ma")
    assert [p[2] for p in phones] == ["w", "ɒ", "m", "a"]
    # a sound the database's language lacks is left out: French mbrola says "aha" as "a a"
    _, phones, words = mbrola.parse_phone_file("a_h_a\na\t80\na\t90\n", "aha")
    assert phones == [(0.0, 0.08, "a"), (0.08, 0.17, "a")] and words == [(0.0, 0.17, "aha")]


def test_an_mbrola_voice_speaks_its_own_language():
    assert mbrola.text_language("es-mx") == "es" and mbrola.text_language("pt-br") == "pt-br"
    assert mbrola.text_language("en-uk") == "en"  # espeak-ng's English for a partner is "en"
    de, us = Voice("mbrola", "de1", language="de"), Voice("mbrola", "us1", language="en-us")
    espeak, flite = Voice("espeak", "f3"), Voice("flite", "kal")
    rng = np.random.default_rng(0)
    assert _pick_language(rng, espeak, de) == "de" and _pick_language(rng, us, espeak) == "en-us"
    assert _pick_language(rng, de, flite) == "en-us"  # flite speaks English only; de1 reads it with German rules


def test_mbrola_speakers_are_dealt_into_every_split_as_their_own_family():
    pool = [Voice("espeak", f"v{i}") for i in range(20)] + [Voice("mbrola", f"db{i}") for i in range(10)]
    splits = assign_splits(pool, seed=0)
    mbrola_splits = [splits[f"mbrola:db{i}"] for i in range(10)]
    assert mbrola_splits.count("val") == 1 and mbrola_splits.count("test") == 1 and mbrola_splits.count("train") == 8


needs_us1 = pytest.mark.skipif(("us1", "en-us", "female") not in mbrola.mbrola_voices(),
                               reason="mbrola and its us1 database not installed (scripts/install-mbrola.sh)")


@needs_us1
def test_mbrola_phones_sit_where_the_sound_is():
    u = mbrola.mbrola_synth("The happy puppy kept a tiny bat, and we picked apples at the top.", "us1")
    assert [w[2] for w in u.words][:4] == ["The", "happy", "puppy", "kept"]
    assert all(a < b for a, b, _ in u.phones) and all(p[1] <= q[0] + 1e-6 for p, q in zip(u.phones, u.phones[1:]))
    assert abs(u.phones[-1][1] - u.duration) < 0.35  # the audio ends with the last phone (and a pause)
    vowels = [p for p in u.phones if clean_ipa(p[2]) in ("æ", "ʌ", "ɑ", "a", "ɐ")]
    stops = [p for p in u.phones if clean_ipa(p[2]) in ("p", "t", "k")]
    assert len(vowels) >= 4 and len(stops) >= 6
    # a voiceless stop's row holds its closure (near silence) before the release: its quietest 10 ms
    closure_db = np.median([min(level_db(u.audio, t, t + 0.01) for t in np.arange(a, b - 0.01, 0.01))
                            for a, b, _ in stops])
    assert np.median([level_db(u.audio, a, b) for a, b, _ in vowels]) - closure_db > 20
    assert sum(is_bilabial_closure(p[2]) for p in u.phones) == 8  # haPPy PuPPy kePt Bat Picked aPPles toP


@needs_us1
def test_the_catalog_offers_installed_mbrola_voices_with_their_language():
    voice = next(v for v in catalog() if v.id == "mbrola:us1")
    assert voice.language == "en-us" and voice.gender == "female" and voice.speaker == "mbrola:us1"
    assert {v.name for v in catalog() if v.engine == "mbrola"} <= set(mbrola.USABLE)


def test_the_installer_installs_the_databases_the_corpus_uses():
    script = (Path(__file__).parents[1] / "scripts" / "install-mbrola.sh").read_text()
    default = re.search(r'DATABASES=\$\{\*:-"([^"]+)"\}', script).group(1).split()
    assert default == list(mbrola.USABLE)
