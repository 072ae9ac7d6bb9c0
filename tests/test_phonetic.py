"""The phonetic front end against pocketsphinx itself: our cepstra against the ones it logs, our phone scores
against the senone scores it logs, for a real recorded voice; streaming that does not depend on chunking or on
audio after a row is due."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from backchannel.models.audio import load_audio
from backchannel.models.frontend import phonetic
from backchannel.models.frontend.features import HOP

SPEECH = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech" / "allison"
PROMPTS = ["confbridge-only-participant", "confbridge-participants", "vm-options"]


def recording(name: str) -> np.ndarray:
    """16 kHz, on the 16-bit grid pocketsphinx reads (near silence, rounding moves log energies a lot)."""
    path = SPEECH / f"{name}.wav"
    if not path.is_file():
        pytest.skip(f"the shared recorded prompts are not beside the checkout ({path})")
    return np.round(np.clip(load_audio(path), -1, 1) * 32767) / 32768


def pocketsphinx_logs(audio: np.ndarray, tmp_path: Path, cmn: str) -> tuple[np.ndarray, np.ndarray]:
    """pocketsphinx's own cepstra and context-independent phone scores (best state, nats) for `audio`, with its
    model's settings except noise removal, which we do not do."""
    import pocketsphinx

    model = phonetic.model_dir()
    params = tmp_path / "feat.params"
    params.write_text((model / "feat.params").read_text().replace("-remove_noise yes", "-remove_noise no")
                      .replace("-cmn batch", f"-cmn {cmn}"))
    mfc, sen = tmp_path / "mfc", tmp_path / "sen"
    mfc.mkdir(exist_ok=True)
    sen.mkdir(exist_ok=True)
    for d in (mfc, sen):
        for f in d.iterdir():
            f.unlink()
    decoder = pocketsphinx.Decoder(featparams=str(params), mfclogdir=str(mfc), senlogdir=str(sen), compallsen=True,
                                   loglevel="ERROR", allphone=str(model.parent / "en-us-phone.lm.bin"))
    assert decoder.config["remove_noise"] is False
    pcm = np.round(audio * 32768).astype(np.int16)
    decoder.start_utt()
    decoder.process_raw(pcm.tobytes(), full_utt=True)
    decoder.end_utt()
    (mfc_file,), (sen_file,) = list(mfc.iterdir()), list(sen.iterdir())
    cepstra = np.frombuffer(mfc_file.read_bytes()[4:], ">f4").reshape(-1, phonetic.N_CEP).astype(np.float64)
    return cepstra, phonetic.senone_log_scores(sen_file.read_bytes(), len(phonetic.acoustic_model().names))


def our_cepstra(audio: np.ndarray) -> np.ndarray:
    """Without the live mean, and aligned to pocketsphinx's frames (our row j is its frame j - 1)."""
    stream = phonetic.PhoneticStream()
    return np.concatenate([stream.cepstra(audio[i:i + 777]) for i in range(0, len(audio), 777)])[1:]


def with_deltas(cepstra: np.ndarray) -> np.ndarray:
    """Every row's features, the edges read as their own copies (as pocketsphinx's batch features do)."""
    return phonetic.with_deltas(np.pad(cepstra, ((3, 3), (0, 0)), mode="edge"))


@pytest.mark.parametrize("name", PROMPTS)
def test_our_cepstra_are_pocketsphinxs(name, tmp_path):
    audio = recording(name)
    theirs, _ = pocketsphinx_logs(audio, tmp_path, "none")
    ours = our_cepstra(audio)
    n = min(len(ours), len(theirs))
    assert abs(len(ours) - len(theirs)) <= 1
    for k in range(phonetic.N_CEP):
        assert np.corrcoef(theirs[:n, k], ours[:n, k])[0, 1] > 0.98, f"cepstrum {k}"


@pytest.mark.parametrize("name", PROMPTS)
def test_our_phone_scores_are_pocketsphinxs(name, tmp_path):
    """Same cepstra (batch mean removed, as it does here), same best phone on most frames and the same ranking of
    the phones within reach (pocketsphinx scores only the 4 nearest Gaussians of a codebook; we score all 128)."""
    audio = recording(name)
    _, theirs = pocketsphinx_logs(audio, tmp_path, "batch")
    cepstra = our_cepstra(audio)
    ours = phonetic.acoustic_model().scores(with_deltas(cepstra - cepstra.mean(0)))
    n = min(len(ours), len(theirs))
    ours, theirs = ours[3:n - 3], theirs[3:n - 3]  # the edges' deltas differ
    assert (ours.argmax(1) == theirs.argmax(1)).mean() > 0.75
    near = [np.corrcoef(o[m], t[m])[0, 1] for o, t in zip(ours, theirs) if (m := t > t.max() - 30).sum() > 3]
    assert np.median(near) > 0.85


def test_the_lips_closures_score_above_the_tongues():
    """In a real voice, force-aligned to its text, rows in the middle of p, b and m carry more closure evidence
    than rows in the middle of t, d, k, g and n: what the evidence is for."""
    from backchannel.models.corpus.recorded import align
    from backchannel.models.phones import is_bilabial_closure, is_tongue_closure

    texts = dict(line.split(": ", 1) for line in (SPEECH / "transcripts.txt").read_text().splitlines() if ": " in line)
    lips, tongue = [], []
    for name in ("conf-getpin", "vm-instructions", "vm-intro"):
        audio = recording(name)
        stream = phonetic.PhoneticStream()
        rows = np.concatenate([stream.process(audio), stream.process(np.zeros(4000, np.float32))])
        evidence = phonetic.closure_evidence(stream.model.places(rows))
        phones, _ = align(audio, texts[name].split("(")[0])
        for start, end, phone in phones:
            middle = evidence[int(round((start + end) / 2 * 100))]
            (lips if is_bilabial_closure(phone) else tongue if is_tongue_closure(phone) else []).append(middle)
    assert len(lips) >= 5 and len(tongue) >= 10
    wins = np.mean([a > b for a in lips for b in tongue])  # the AUC of the evidence, on these phones
    assert wins > 0.7, wins


def test_streaming_does_not_depend_on_chunks_or_later_audio():
    rng = np.random.default_rng(0)
    audio = (rng.standard_normal(16000) * 0.05).astype(np.float32)
    whole = phonetic.PhoneticStream().process(audio)
    stream = phonetic.PhoneticStream()
    cuts = [0, 7, 307, 308, 2308, 7308, len(audio)]
    chunked = np.concatenate([stream.process(audio[a:b]) for a, b in zip(cuts[:-1], cuts[1:])])
    np.testing.assert_allclose(chunked, whole[:len(chunked)], rtol=1e-9, atol=1e-9)
    assert len(chunked) == len(whole)
    # row j is final once the audio reaches j * HOP + READY_AFTER, and not before: later audio changes nothing
    cut = 9000
    early = phonetic.PhoneticStream().process(audio[:cut])
    changed = audio.copy()
    changed[cut:] = rng.standard_normal(len(audio) - cut) * 0.5
    late = phonetic.PhoneticStream().process(changed)
    np.testing.assert_allclose(late[:len(early)], early, rtol=1e-9, atol=1e-9)
    assert len(early) == (cut - phonetic.READY_AFTER) // HOP + 1


def test_the_live_mean_follows_the_voice_not_the_silence():
    """A voice with long silences between its words (a conversation's own track while the partner talks) keeps the
    same mean as the voice alone: only rows that carry voice update it."""
    words = [recording(name) for name in PROMPTS]
    gap = np.zeros(16000 * 3, np.float32)
    talk, sparse = phonetic.PhoneticStream(), phonetic.PhoneticStream()
    talk.features(np.concatenate(words))
    sparse.features(np.concatenate([w for word in words for w in (word, gap)]))
    assert np.abs(talk.mean - sparse.mean).max() < 0.5
    assert talk.weight > phonetic.CMN_PRIOR


def test_the_lips_model_scores_the_full_models_columns():
    """lip_model is the full model's columns for its phones: exactly in float64, to float32's precision as shipped."""
    full = phonetic.acoustic_model()
    features = phonetic.PhoneticStream().features(recording(PROMPTS[0]))
    names = phonetic.lip_model().names
    assert len(names) == 27 and set(names) <= set(full.names)
    expected = full.scores(features)[:, [full.index[n] for n in names]]
    np.testing.assert_allclose(full.restricted(names, np.float64).scores(features), expected, rtol=1e-12)
    np.testing.assert_allclose(phonetic.lip_model().scores(features), expected, atol=1e-3)


def test_tracks_fed_together_hold_what_each_fed_alone_would():
    """feed_places scores every track's new rows in one call: each track's rows are those it gets fed alone, however
    its audio is cut, and whether or not the others complete rows in the same call."""
    voices = [recording(name)[:16000] for name in PROMPTS]
    alone = []
    for voice in voices:
        track = phonetic.PlaceEvidence()
        track.feed(voice)
        alone.append(track.rows.data)
    together = [phonetic.PlaceEvidence() for _ in voices]
    cuts = [[0, 100, 333, 5000, 5001, 16000], [0, 0, 4000, 4100, 9000, 16000], [0, 16000, 16000, 16000, 16000, 16000]]
    for step in range(len(cuts[0]) - 1):  # some calls give a track nothing, or too little for a row
        phonetic.feed_places(together, [voice[c[step]:c[step + 1]] for voice, c in zip(voices, cuts)])
    phonetic.feed_places([], [])
    for track, rows in zip(together, alone):
        assert track.rows.data.shape == rows.shape == (len(rows), len(phonetic.LIP_PLACES)) and len(rows) > 80
        np.testing.assert_allclose(track.rows.data, rows, atol=1e-3)


def test_evidence_is_averaged_over_the_rows_known():
    track = phonetic.PlaceEvidence()
    rows = np.arange(10 * len(phonetic.LIP_PLACES), dtype=np.float64).reshape(10, -1)
    track.rows.extend(rows)
    track.drop_before(2)  # rows 2..9 are left
    bilabial = lambda places: places["bilabial"]  # noqa: E731
    (means,) = track.mean_over(np.array([[2, 4], [0, 3], [8, 20], [5, 5], [12, 14]]), (bilabial,))
    column = rows[:, phonetic.LIP_PLACES.index("bilabial")]
    np.testing.assert_allclose(means[:3], [column[2:4].mean(), column[2:3].mean(), column[8:10].mean()])
    assert np.isnan(means[3:]).all()  # an empty span, and one past the rows known
    (none,) = track.mean_over(np.zeros((0, 2)), (bilabial,))
    assert none.shape == (0,)
