"""Labels: lips from real espeak-ng phone timings, behaviour from the conversation, roles from where the audio is."""
import numpy as np
import pytest
from scipy.ndimage import binary_erosion

from backchannel.models import measures
from backchannel.models.corpus import dialogue, visemes
from backchannel.models.corpus.behaviour import nod_curve
from backchannel.models.corpus.clip import ClipSpec, make_clip, speech_mask
from backchannel.models.corpus.espeak import Espeak
from backchannel.models.corpus.stats import clip_quality
from backchannel.models.corpus.utterance import Utterance
from backchannel.models.corpus.voices import Voice
from backchannel.models.frontend.features import frame_rms
from backchannel.models.motion import BS, FRAME_RATE, HEAD_ROTATION, IDLE, LISTENING, SPEAKING, frame_count, neutral
from backchannel.models.phones import clean_ipa


def lips(u, scale=1.0):
    frames = frame_count(u.duration)
    m = neutral(frames)
    m[:, :52] = visemes.lips_to_blendshapes(visemes.lip_params(u.phones, frames, scale))
    return m


def mean_in(m, phones, names, column):
    vals = [m[measures.span_frames(a, b, len(m)), column].mean() for a, b, n in phones if clean_ipa(n) in names]
    return float(np.mean(vals)), len(vals)


CASES = [("en-us", "Bob bought a big map, maybe my mom paid for the pub.", 130),
         ("en-us+f3", "Please bring me the blue umbrella, Pam.", 300),  # fast: short closures
         ("de+m3", "Mama bringt Brot, Butter und Milch am Montag.", 200),
         ("es", "Pablo tiene un perro bonito en Madrid.", 240),
         ("fr+Annie", "Le petit bateau bleu passe par Paris.", 180)]


@pytest.mark.parametrize("voice,sentence,rate", CASES)
def test_lips_shut_in_every_bilabial_and_open_on_vowels(voice, sentence, rate):
    u = Espeak.get().synth(sentence, voice, rate=rate)
    m = lips(u)
    closed, total = measures.phones_shut(m, u.phones)
    assert total >= 4 and closed == total
    shut = measures.lips_shut(m)
    vowels = [(a, b) for a, b, n in u.phones if clean_ipa(n)[:1] in "aeiouɑæɛɔəʌɪʊɐ"]
    open_ = [not shut[measures.span_frames(a, b, len(m))].all() for a, b in vowels]
    assert np.mean(open_) >= 0.9
    assert not shut[measures.span_frames(*u.speech_span, len(m))].all()


def test_shapes_follow_the_phones():
    e = Espeak.get()
    m_ou = lips(u := e.synth("who knew, we do too", "en-us"))
    pucker_u, n_u = mean_in(m_ou, u.phones, {"u", "w"}, BS["MouthPucker"])
    m_ee = lips(v := e.synth("he sees eve's teeth", "en-us"))
    pucker_i, n_i = mean_in(m_ee, v.phones, {"i", "ɪ"}, BS["MouthPucker"])
    assert n_u >= 3 and n_i >= 3 and pucker_u > 0.3 > pucker_i + 0.2  # rounded on OO/W, not on EE
    m_fv = lips(w := e.synth("five fine vans", "en-us"))
    tuck, n = mean_in(m_fv, w.phones, {"f", "v"}, BS["MouthRollLower"])
    assert n >= 3 and tuck > 0.3  # lower lip to the upper teeth on F/V
    jaw_a, _ = mean_in(m := lips(x := e.synth("father saw a hot car, she sees three trees", "en-us")), x.phones,
                       {"ɑ", "a", "ɔ"}, BS["JawOpen"])
    jaw_i, _ = mean_in(m, x.phones, {"i", "ɪ"}, BS["JawOpen"])
    assert jaw_a > 1.8 * jaw_i  # the jaw follows vowel height


def test_rounding_is_anticipated_across_consonants():
    e = Espeak.get()
    soon, seen = e.synth("soon", "en-us"), e.synth("seen", "en-us")
    s_soon = mean_in(lips(soon), soon.phones, {"s"}, BS["MouthPucker"])[0]
    s_seen = mean_in(lips(seen), seen.phones, {"s"}, BS["MouthPucker"])[0]
    assert s_soon > s_seen + 0.15  # the lips round during the s of "soon" already


def test_measures_on_hand_made_frames():
    m = neutral(6)
    m[1, BS["JawOpen"]] = 0.4  # open
    m[2, BS["JawOpen"]], m[2, BS["MouthClose"]] = 0.3, 0.3  # jaw open but lips together (ARKit convention)
    m[3, BS["MouthLowerDownLeft"]] = m[3, BS["MouthLowerDownRight"]] = 0.5  # lips drawn apart
    assert measures.lips_shut(m).tolist() == [True, False, True, False, True, True]
    # frames are instants k / 30: "m" holds frame 2 (shut), "p" only frame 1 (open), "b" frame 4 (shut)
    phones = [(0.06, 0.075, "m"), (0.0333, 0.034, "p"), (0.12, 0.16, "b"), (0.0, 0.2, "a")]
    assert measures.phones_shut(m, phones) == (2, 3)
    assert measures.span_frames(0.04, 0.045, 100).tolist() == [1]  # between two instants: the nearest frame


def test_nod_detector_finds_nods_not_sway():
    frames = 300
    t = np.arange(frames) / FRAME_RATE
    m = neutral(frames)
    m[:, HEAD_ROTATION.start] = 0.02 * np.sin(2 * np.pi * 0.2 * t)  # slow sway: no nods
    assert len(measures.nod_frames(m)) == 0
    m[:, HEAD_ROTATION.start] += nod_curve(frames, 3.0, 0.07, 0.45, 1) + nod_curve(frames, 7.0, 0.06, 0.4, 2)
    nods = measures.nod_frames(m) / FRAME_RATE
    assert measures.nods_after([2.9, 6.8, 5.0], measures.nod_frames(m)).tolist() == [True, True, False]
    assert 3 <= len(nods) <= 4 and all(3.0 < n < 3.5 or 7.0 < n < 8.0 for n in nods)


def spoken(seconds, words):
    """A silent utterance with `words` evenly spread over `seconds` (one phone per word)."""
    spans = [(round(seconds * k / words, 4), round(seconds * (k + 0.8) / words, 4), f"w{k}") for k in range(words)]
    return Utterance(np.zeros(int(seconds * 16000), np.float32), [(a, b, "a") for a, b, _ in spans], spans)


def test_an_interruption_drops_every_response_to_the_unsaid_part():
    tl = dialogue._Timeline(20.0)
    turn = tl.add(dialogue.Segment("self", "turn", 1.0, spoken(5.0, 10)))
    for k in range(20):  # back-to-back responses all through the turn
        tl.add(dialogue.Segment("other", "backchannel", 1.0 + 0.25 * k, spoken(0.2, 1)))
    habits = dialogue.Habits("dialogue", 0.5, 0.1, interrupt_rate=1.0, silence_rate=0.0)
    at = dialogue._next_start(np.random.default_rng(0), tl, turn, "other", habits)
    assert turn.flags["interrupted"] and 2.0 < at < 5.0
    kept = [s.start for s in tl.segments if s.kind == "backchannel"]
    assert kept == [1.0 + 0.25 * k for k in range(20) if 1.0 + 0.25 * k <= at - 0.3]


@pytest.fixture(scope="module")
def clips():
    specs = [ClipSpec("a", "train", (5, i, 1), 20.0, Voice("espeak", v1), Voice("espeak", v2), lang, augment=0.0,
                      scenario=sc)
             for i, (v1, v2, lang, sc) in enumerate([("Alicia", "m3", "en-us", "dialogue"),
                                                     ("max", "f4", "de", "other_monologue"),
                                                     ("m1", "Annie", "it", "sparse")])]
    return [make_clip(s) for s in specs]


def test_roles_match_where_each_track_sounds(clips):
    for c in clips:
        frames = len(c.motion)
        self_db = 20 * np.log10(frame_rms(c.self_audio, frames) + 1e-9)
        other_db = 20 * np.log10(frame_rms(c.other_audio, frames) + 1e-9)
        # loud for 3 frames running (a frame's 40 ms window reaches 20 ms past a phone's edge)
        self_loud = binary_erosion(self_db > self_db.max() - 25)
        other_loud = binary_erosion(other_db > other_db.max() - 25)
        assert (c.state[self_loud] == SPEAKING).mean() > 0.97
        assert (c.state[other_loud] != IDLE).mean() > 0.97
        # (the rest is self speaking: own pauses shorter than SPEAKING_BRIDGE_S stay "speaking")
        assert (c.state[other_loud & ~self_loud] == LISTENING).mean() > 0.85
        silent = (self_db < self_db.max() - 60) & (other_db < other_db.max() - 60)
        long_silence = binary_erosion(silent, iterations=6)  # silent for 0.4 s around: longer than any bridge
        assert long_silence.any() and (c.state[long_silence] == IDLE).all()
        assert {IDLE, SPEAKING, LISTENING} >= set(np.unique(c.state).tolist())
        # the role timeline agrees with the segments written to the metadata
        assert (c.state[speech_mask(c.meta, "self", frames)] == SPEAKING).all()


def test_behaviour_labels_meet_the_quality_bar(clips):
    rng = np.random.default_rng(0)
    totals = {}
    for c in clips:
        for k, v in clip_quality(c, rng).items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                totals[k] = totals.get(k, 0) + v
        outside = ~speech_mask(c.meta, "self", len(c.motion), 0.2)
        assert measures.lips_shut(c.motion)[outside].all()  # mouth closed away from own speech
    assert totals["bilabial_total"] >= 20 and totals["bilabial_closed"] == totals["bilabial_total"]
    assert totals["phrase_ends"] >= 8
    nod_rate = totals["phrase_ends_nodded"] / totals["phrase_ends"]
    assert nod_rate >= 0.6 and nod_rate > 2 * totals["random_nodded"] / max(1, totals["random_moments"])


def test_metadata_describes_the_clip(clips):
    c = clips[0]
    meta = c.meta
    assert c.motion.shape == (600, 62) and c.motion.dtype == np.float32 and c.state.dtype == np.int8
    assert len(c.self_audio) == len(c.other_audio) == 320000
    assert {s["kind"] for s in meta["segments"]} <= {"turn", "backchannel", "laugh"}
    assert all(s["track"] in ("self", "other") and s["start"] < s["end"] for s in meta["segments"])
    for track in ("self", "other"):  # no speaker overlaps themselves
        spans = sorted((s["start"], s["end"]) for s in meta["segments"] if s["track"] == track)
        assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert meta["voices"]["self"]["engine"] == "espeak" and meta["voices"]["self"]["language"] == "en-us"
    assert set(meta["style"]) >= {"nod_propensity", "blink_rate", "head_amp", "smile_base"}
    assert all(a <= b for a, b, _ in meta["self_phones"]) and meta["self_words"]
    assert all({"t", "listened"} <= set(e) for e in meta["other_phrase_ends"])
    assert meta["augment"]["self"] == {"gain_db": meta["augment"]["self"]["gain_db"]}  # augment=0: level only


def test_frame_rms_is_the_rms_of_a_centred_window_even_past_the_end():
    x = np.random.default_rng(3).normal(0, 0.2, 16000).astype(np.float32)
    env = frame_rms(x, 40)  # 40 frames: 1.33 s of instants over 1 s of audio
    for k in (0, 7, 29, 30, 39):
        c = k * 16000 // 30
        window = np.pad(x, (320, 16000))[c:c + 640]  # 40 ms centred on sample c, silence beyond the ends
        assert env[k] == pytest.approx(np.sqrt(np.mean(window.astype(np.float64) ** 2)), rel=1e-9, abs=1e-12)
    assert env[31:].max() == 0.0 and env[29] > 0.1
