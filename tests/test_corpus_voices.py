"""Voices: real espeak-ng / festival / flite output and pocketsphinx alignment of real speech, checked against
the audio itself (phones sit where the sound is)."""
import numpy as np
import pytest

from backchannel.models.corpus import festival, text, voices
from backchannel.models.corpus.dsp import frame_f0
from backchannel.models.corpus.espeak import Espeak
from backchannel.models.corpus.recorded import RecordedSpeaker
from backchannel.models.corpus.utterance import Utterance
from backchannel.models.corpus.voices import Voice, assign_splits, catalog
from backchannel.models.frontend.features import frame_rms
from backchannel.models.phones import arpabet_to_ipa, articulations, clean_ipa, is_bilabial_closure, is_vowel

from .corpus_fixtures import ALLISON


def level_db(audio, a, b):
    """RMS level (dB) of a 16 kHz signal between a and b seconds."""
    x = audio[int(a * 16000): int(b * 16000)]
    return 20 * np.log10(np.sqrt(np.mean(x ** 2)) + 1e-9) if len(x) else -200.0


def test_phone_names_map_to_shapes_in_any_language():
    assert is_bilabial_closure("pʰ") and is_bilabial_closure("mː") and is_bilabial_closure("b")
    assert not is_bilabial_closure("mb") and not is_bilabial_closure("f") and not is_bilabial_closure("(en)")
    assert clean_ipa("ˈä") == "a" and clean_ipa("ɯᵝ") == "ɯ"
    diphthong = articulations("aɪ")
    assert [round(share, 2) for share, _ in diphthong] == [0.55, 0.45]
    assert diphthong[0][1].targets["jaw"] > diphthong[1][1].targets["jaw"]  # open a -> close i
    assert articulations("tʃ")[0][1].kind == "postalveolar"  # the lips show the release
    assert articulations("ǃ")  # clicks and other rarities fall back instead of failing
    assert arpabet_to_ipa("AY1") == "aɪ" and arpabet_to_ipa("pau") is None
    with pytest.raises(ValueError):
        arpabet_to_ipa("qq")


def test_espeak_phones_sit_where_the_sound_is():
    e = Espeak.get()
    u = e.synth("The happy puppy kept a tiny bat, and we picked apples at the top.", "en-us", rate=175)
    assert [w[2] for w in u.words][:4] == ["The", "happy", "puppy", "kept"]
    assert all(a < b for a, b, _ in u.phones) and all(p[1] <= q[0] + 1e-6 for p, q in zip(u.phones, u.phones[1:]))
    vowels = [p for p in u.phones if clean_ipa(p[2]) in ("æ", "ʌ", "ɑ", "a", "ɐ")]
    stops = [p for p in u.phones if clean_ipa(p[2]) in ("p", "t", "k")]
    assert len(vowels) >= 4 and len(stops) >= 6
    vowel_db = np.median([level_db(u.audio, a, b) for a, b, _ in vowels])
    # a voiceless stop starts with its closure (near silence) -- espeak reports it at the release; we moved it
    closure_db = np.median([level_db(u.audio, a, a + 0.6 * (b - a)) for a, b, _ in stops])
    assert vowel_db - closure_db > 15
    assert u.phones[-1][1] <= u.duration + 1e-3


def test_a_voice_trails_off_into_its_pauses():
    u = Espeak.get().synth("We picked apples at the top, and then we went home.", "en-us", rate=175)
    top, and_ = next((w, v) for w, v in zip(u.words, u.words[1:]) if w[2] == "top")
    assert and_[0] - top[1] >= 0.1, "espeak pauses at the comma"
    faded = u.trailing_off(20.0)
    assert faded.phones == u.phones and faded.words == u.words and len(faded.audio) == len(u.audio)
    assert faded.info["trails_off_db"] == 20.0 and np.array_equal(u.trailing_off(0.0).audio, u.audio)
    for phrase_end, resume in ((top[1], and_[0]), (u.phones[-1][1], u.duration)):
        a, b, _ = max(p for p in u.phones if p[1] <= phrase_end and is_vowel(p[2]))  # the phrase's last vowel
        k = int(a * 16000)
        if phrase_end == top[1]:
            assert np.array_equal(faded.audio[:k], u.audio[:k])  # the phrase as said until its last vowel
        # linear in dB from the vowel's start to the phrase's end, then -20 dB through the pause
        ramp = lambda t: -20.0 * (t - a) / (phrase_end - a)  # noqa: E731
        assert gain_db(u, faded, a, a + 0.02) == pytest.approx(ramp(a + 0.01), abs=0.5)
        assert gain_db(u, faded, b - 0.02, b) == pytest.approx(ramp(b - 0.01), abs=0.5)
        pause = slice(int(np.ceil(phrase_end * 16000)), int(resume * 16000))
        assert np.allclose(faded.audio[pause], 0.1 * u.audio[pause], rtol=1e-3, atol=1e-8)
    k, j = int(and_[0] * 16000), int(u.phones[-1][0] * 16000)  # the next phrase starts at full voice again
    assert np.array_equal(faded.audio[k:j][:1600], u.audio[k:j][:1600])


def test_a_voice_draws_out_the_vowel_before_a_pause():
    u = Espeak.get().synth("We picked apples at the top, and then we went home.", "en-us", rate=175)
    long = u.lengthened(1.8)
    finals = [vowel for vowel, _ in u.phrase_final_vowels()]
    assert [u.phones[i][2] for i in finals] == ["ɑː", "oʊ"] and [w[2] for w in long.words] == [w[2] for w in u.words]
    added = 0.0
    for i, (p, q) in enumerate(zip(u.phones, long.phones)):
        assert p[2] == q[2] and q[0] == pytest.approx(p[0] + added, abs=2e-4)
        if i in finals:
            assert q[1] - q[0] == pytest.approx(1.8 * (p[1] - p[0]), abs=2e-4)
            added += q[1] - q[0] - (p[1] - p[0])
            if p[2] == "oʊ":  # the same pitch (not 1.8x lower, as slowing the tape would give)
                assert f0(long.audio, *q[:2]) == pytest.approx(f0(u.audio, *p[:2]), rel=0.05)
        else:
            assert q[1] - q[0] == pytest.approx(p[1] - p[0], abs=2e-4)
            k, j = int(round(p[0] * 16000)), int(round(q[0] * 16000))  # the same sound, later (times: 0.1 ms)
            n = int((p[1] - p[0]) * 16000) - 3
            assert any(np.array_equal(long.audio[j + d + 3:j + d + n], u.audio[k + 3:k + n]) for d in range(-2, 3))
    assert long.duration == pytest.approx(u.duration + added, abs=2e-4) and long.info["lengthened"] == 1.8


def f0(audio, a: float, b: float) -> float:
    """Median pitch (Hz) of a voiced stretch (dsp.frame_f0: normalised autocorrelation per 33 ms)."""
    x = audio[int(a * 16000): int(b * 16000)]
    pitch = frame_f0(x, max(1, int(len(x) / 16000 * 30)))
    return float(np.median(pitch[pitch > 0]))


def gain_db(u, faded, a: float, b: float) -> float:
    """The gain (dB, RMS over the samples that sound) trailing off put on the audio between a and b seconds."""
    i, j = int(np.ceil(a * 16000)), int(b * 16000)
    sounding = np.abs(u.audio[i:j]) > 1e-4
    assert sounding.sum() > 20, f"nothing sounds between {a} and {b} s"
    x, y = u.audio[i:j][sounding], faded.audio[i:j][sounding]
    return float(20 * np.log10(np.sqrt(np.mean(y.astype(np.float64) ** 2) / np.mean(x.astype(np.float64) ** 2))))


def test_phrase_ends_as_people_do_draw_nothing_from_the_clip(monkeypatch):
    """Drawn-out, trailing phrase ends come from a random stream of their own: a clip's texts, and every other
    draw, are what they were without them."""
    said = {}
    for rate in (0.0, 1.0):
        monkeypatch.setattr(voices, "TRAIL_OFF_RATE", rate)
        rng = np.random.default_rng(7)
        speaker = voices.Speaker(Voice("espeak", "default"), voices.Settings("en-us", 1.0, 1.0), rng)
        said[rate] = [speaker.sentence(), speaker.backchannel(), speaker.sentence()], rng.random()
    (plain, next_plain), (trailing, next_trailing) = said[0.0], said[1.0]
    assert [u.text for u in plain] == [u.text for u in trailing] and next_plain == next_trailing
    for u, t in zip(plain, trailing):
        assert "trails_off_db" not in u.info and "lengthened" not in u.info
        assert voices.TRAIL_OFF_DB[0] <= t.info["trails_off_db"] <= voices.TRAIL_OFF_DB[1]
        assert voices.LENGTHEN[0] <= t.info.get("lengthened", 1.0) <= voices.LENGTHEN[1]


@pytest.mark.parametrize("language", ["de", "ja", "ru", "cmn"])
def test_espeak_speaks_pseudo_text_in_other_languages(language):
    rng = np.random.default_rng(1)
    sentence = text.sentence(rng, language)
    u = Espeak.get().synth(sentence, f"{language}+f3")
    assert u.duration > 0.5 and len(u.phones) >= 8 and len(u.words) >= 3
    assert "(" not in "".join(p[2] for p in u.phones)  # no language-switch markers left in phone names
    speech = [level_db(u.audio, a, b) for a, b, _ in u.phones]
    assert np.median(speech) > level_db(u.audio, 0, 0.005) + 20 or u.phones[0][0] < 0.005


def test_every_corpus_language_is_an_espeak_voice():
    e = Espeak.get()
    for language in text.ENGLISH + text.LATIN_LANGUAGES + text.PHONEME_LANGUAGES:
        assert e.synth("[[ba]]", f"{language}+m4").phones, language


def test_espeak_refuses_unknown_voices():
    with pytest.raises(ValueError, match="no voice"):
        Espeak.get().synth("hello", "xx-nonexistent")


@pytest.mark.skipif(not festival.festival_voices(), reason="festival or its kal voice not installed (setup.sh does)")
def test_festival_segments_and_words():
    us = festival.festival_synth(["Maybe we could buy the big map.", "Yes."], "kal_diphone", stretch=1.2)
    assert len(us) == 2
    u = us[0]
    assert [w[2].lower() for w in u.words] == festival.words_of("Maybe we could buy the big map.")
    env = frame_rms(u.audio, int(u.duration * 30))
    inside = np.zeros(len(env), bool)
    for a, b, _ in u.phones:
        inside[int(a * 30): int(b * 30) + 1] = True
    assert env[inside].mean() > 5 * env[~inside].mean()  # the silences festival reports are quiet
    assert sum(is_bilabial_closure(p[2]) for p in u.phones) == 6  # MayBe, Buy, Big, MaP


@pytest.mark.skipif(not festival.flite_voices(), reason="flite not installed (scripts/setup.sh installs it)")
def test_flite_phones_and_matched_words():
    u = festival.flite_synth("Please bring my umbrella tomorrow morning.", "kal", stretch=1.0)
    assert [w[2] for w in u.words] == festival.words_of("Please bring my umbrella tomorrow morning.")
    assert u.words[0][0] == u.phones[0][0] and u.words[-1][1] == u.phones[-1][1]
    loud = [level_db(u.audio, a, b) for a, b, n in u.phones if clean_ipa(n) in ("ɛ", "aɪ", "ʌ", "ɑ", "ɔ")]
    assert np.median(loud) > level_db(u.audio, 0, 0.05) + 20


@pytest.mark.skipif(not festival.flite_voices(), reason="flite not installed (scripts/setup.sh installs it)")
def test_every_flite_voice_in_the_plan_times_its_phones():
    # Debian's flite lists awb_time, whose -psdur reports no phones: every clip planned for it failed
    for voice in festival.flite_voices():
        u = festival.flite_synth("Please bring my umbrella.", voice)
        assert [w[2] for w in u.words] == ["please", "bring", "my", "umbrella"], voice
        assert u.phones[-1][1] <= len(u.audio) / 16000 + 0.05, voice


def test_words_are_matched_onto_phones_or_refused():
    def spans(*names):
        return [(i / 8, (i + 1) / 8, n) for i, n in enumerate(names)]

    assert festival.match_words("Big map!", spans("b", "ɪ", "ɡ", "m", "æ", "p")) == [(0.0, 0.375, "big"),
                                                                                   (0.375, 0.75, "map")]
    with pytest.raises(festival.WordMatchError, match="3 words onto 2 phones"):  # was: words past the last phone
        festival.match_words("one two three", spans("w", "ʌ"))
    with pytest.raises(festival.WordMatchError, match="3 words onto 0 phones"):
        festival.match_words("one two three", [])
    with pytest.raises(festival.WordMatchError, match="onto its 12 phones"):  # more than "a" can take
        festival.match_words("a", spans(*"əəəəəəəəəəəə"))
    assert festival.match_words("42!", spans("f")) == []  # no words, nothing to match


def test_a_text_whose_words_cannot_be_timed_is_skipped(monkeypatch):
    said = []

    def flite_synth(text, voice, stretch, f0_mean):  # flite, failing on the first text it is given
        said.append(text)
        if len(said) == 1:
            raise festival.WordMatchError(f"cannot match the words of {text!r}")
        return Utterance(np.zeros(3200, np.float32), [(0.05, 0.15, "ə")], [(0.05, 0.15, "uh")], text)

    monkeypatch.setattr(voices, "flite_synth", flite_synth)
    speaker = voices.Speaker(Voice("flite", "kal"), voices.Settings("en-us", 1.0, 1.0), np.random.default_rng(0))
    assert speaker.sentence().text == said[1] != said[0] and len(said) == 2  # the next text instead
    assert speaker.backchannel().text == said[2]

    def never(text, voice, stretch, f0_mean):
        raise festival.WordMatchError("cannot match")

    monkeypatch.setattr(voices, "flite_synth", never)
    with pytest.raises(RuntimeError, match="flite:kal could not say"):
        speaker.sentence()


def test_recorded_speech_is_aligned_in_order_where_the_energy_is(align_cache):
    speaker = RecordedSpeaker(ALLISON, align_cache)
    assert speaker.name == "allison" and len(speaker.prompts) >= 10
    checked = 0
    for prompt in speaker.prompts[:5]:
        timing = speaker.alignment(prompt)
        if timing is None:
            continue
        phones, words = timing
        u = speaker.utterance(prompt)
        assert [w[2] for w in words] == festival.words_of(prompt.text)
        assert all(a <= b for a, b, _ in words) and all(p[1] <= q[0] + 1e-6 for p, q in zip(words, words[1:]))
        a, b = words[0][0], words[-1][1]
        energy = u.audio ** 2
        inside = energy[int(a * 16000): int(b * 16000)].sum() / energy.sum()
        assert inside > 0.9, f"{prompt.name}: only {inside:.0%} of the energy inside the aligned words"
        vowels = [p for p in phones if clean_ipa(p[2])[:1] in "aeiouæɑɔʌɛɪʊəɝ"]
        assert np.median([level_db(u.audio, s, e) for s, e, _ in vowels]) > level_db(u.audio, 0, max(a, 0.02)) + 15
        checked += 1
    assert checked >= 4
    # cached: a second speaker object reads the same alignment without aligning again
    again = RecordedSpeaker(ALLISON, align_cache).alignment(speaker.prompts[0])
    assert again == speaker.alignment(speaker.prompts[0])


def test_splits_keep_speakers_apart():
    voices = catalog([ALLISON])
    splits = assign_splits(voices, seed=0)
    assert splits["recorded:allison"] == "test-real"
    for v in voices:  # festival's and flite's kal are one person: one split
        if v.engine in ("festival", "flite") and "kal" in v.name:
            assert splits[v.speaker] == splits["cmu:kal"]
    espeak_splits = [splits[v.speaker] for v in voices if v.engine == "espeak"]
    assert {"train", "val", "test"} <= set(espeak_splits)
    assert espeak_splits.count("train") > 5 * espeak_splits.count("test")
    assert assign_splits(voices, seed=1) != splits  # the seed deals them differently
    assert assign_splits(voices, 0, real_split="train")["recorded:allison"] == "train"
    assert Voice("flite", "kal16").speaker == Voice("festival", "kal_diphone").speaker == "cmu:kal"
