"""Recorded speech in other languages: aligning a recording to its transcript by warping espeak-ng's reading of it
(models/corpus/synth_align.py), speaker folders that say their language, and Tux Paint's readers laid out as such
folders (scripts/tuxpaint_speakers.py). The "recordings" are another espeak-ng voice variant reading at another
pace, so the true phone times are known."""
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile

from backchannel.models.audio import SAMPLE_RATE
from backchannel.models.corpus.build import BuildConfig, plan
from backchannel.models.corpus.espeak import Espeak
from backchannel.models.corpus.recorded import ALIGNER_VERSION, RecordedSpeaker
from backchannel.models.corpus.synth_align import _outside_pauses, align_by_synthesis, pauses_passed_over, warp_path
from backchannel.models.frontend.features import log_mel

from .corpus_fixtures import ALLISON

ROOT = Path(__file__).resolve().parents[1]
FIRST, SECOND = "Una pelota de fútbol americano", "y un hipopótamo en la mesa."


def reading(text: str, rate: int) -> tuple[np.ndarray, list]:
    """A "reader" (espeak-ng's es+f3 variant, higher pitched, at its own pace) and its true phones."""
    u = Espeak.get().synth(text, "es+f3", rate=rate, pitch=70).trimmed(0.05)
    return u.audio, u.phones


def reading_with_a_pause() -> tuple[np.ndarray, list, int]:
    """The first half read slowly, a 0.4 s pause, the second half fast: timing no uniform stretch of espeak-ng's own
    reading can match. Returns the audio, its true phones, and how many of them come before the pause."""
    a, a_phones = reading(FIRST, 120)
    b, b_phones = reading(SECOND, 220)
    gap = np.zeros(int(0.4 * SAMPLE_RATE), np.float32)
    shift = (len(a) + len(gap)) / SAMPLE_RATE
    return np.concatenate([a, gap, b]), a_phones + [(s + shift, e + shift, n) for s, e, n in b_phones], len(a_phones)


def test_phones_land_where_the_recording_says_them_across_a_pause_espeak_does_not_make():
    audio, truth, before = reading_with_a_pause()
    phones, words, _ = align_by_synthesis(audio, f"{FIRST} {SECOND}", "es")
    assert [p[2] for p in phones] == [p[2] for p in truth]
    error = np.abs(np.array([p[:2] for p in phones]) - np.array([p[:2] for p in truth]))
    assert np.median(error) < 0.02 and error.max() < 0.08
    pause_start, pause_end = truth[before - 1][1], truth[before][0]
    assert all(p[1] <= pause_start + 0.02 for p in phones[:before])  # nothing smeared over the pause
    assert all(p[0] >= pause_end - 0.02 for p in phones[before:])
    assert [w[2] for w in words] == f"{FIRST} {SECOND}".replace(".", "").split()
    assert words[0][0] == phones[0][0] and words[-1][1] == phones[-1][1]


def test_long_silence_around_a_recording_does_not_take_its_last_phones():
    """Recordings carry silence around the speech; standardised per band, a silent row looks like a stop's closure,
    and the warp once put a phrase's last phones 0.6 s into the silence after it."""
    audio, truth = reading("Un mono come plátanos.", 200)
    pad = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    phones, _, _ = align_by_synthesis(np.concatenate([pad, audio, pad]), "Un mono come plátanos.", "es")
    error = np.abs(np.array([p[:2] for p in phones]) - np.array([p[:2] for p in truth]) - 0.6)
    assert error.max() < 0.05


def test_the_reader_s_pause_is_passed_over_not_matched():
    audio, truth, before = reading_with_a_pause()
    said = Espeak.get().synth(f"{FIRST} {SECOND}", "es").trimmed(0.1)
    path, _ = warp_path(log_mel(said.audio), log_mel(audio))
    assert (np.diff(path, axis=0) >= 0).all() and (np.diff(path, axis=0).sum(1) >= 1).all()  # monotonic
    pause = np.arange(int(truth[before - 1][1] * 100) + 3, int(truth[before][0] * 100) - 3)
    assert len(pause) > 30 and not np.isin(pause, path[:, 1]).any()


def test_a_transcript_that_was_not_said_costs_more():
    audio, _, _ = reading_with_a_pause()
    _, _, right = align_by_synthesis(audio, f"{FIRST} {SECOND}", "es")
    _, _, wrong = align_by_synthesis(audio, "Algunos arándanos en la cocina de la casa.", "es")
    assert wrong > right + 0.05


def test_warp_path_follows_a_copy_played_at_half_speed():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(30, 8))
    b = np.repeat(a, 2, axis=0)
    path, cost = warp_path(a, b)
    assert tuple(path[0]) == (0, 0) and tuple(path[-1]) == (29, 59)
    assert np.abs(path[:, 1] // 2 - path[:, 0]).max() == 0  # every b row meets the a row it copies
    assert cost < 0.1


def test_text_espeak_cannot_read_and_empty_recordings_are_clear_errors():
    with pytest.raises(ValueError, match="no phones"):
        align_by_synthesis(np.zeros(SAMPLE_RATE, np.float32), "...", "es")
    with pytest.raises(ValueError, match="empty"):
        align_by_synthesis(np.zeros(0, np.float32), "Una mesa.", "es")


def test_no_span_keeps_a_pause_passed_over_inside_it():
    met = np.array([[0, r] for r in list(range(40)) + list(range(60, 100))])  # rows 40-59 (0.2 s) met by no row
    pauses = pauses_passed_over(met, 100)
    assert pauses == [(0.4, 0.6)]
    assert _outside_pauses((0.10, 0.30, "a"), pauses) == (0.10, 0.30, "a")  # no pause inside: as it was
    assert _outside_pauses((0.38, 0.70, "i"), pauses) == (0.60, 0.70, "i")  # the longer side of the pause
    assert _outside_pauses((0.20, 0.45, "n"), pauses) == (0.20, 0.40, "n")  # reaching into one counts too
    short = np.array([[0, r] for r in range(100) if not 20 <= r < 25])  # 50 ms: a closure's length, not a pause
    assert pauses_passed_over(short, 100) == []


PHRASES = {"pelota": "Una pelota roja.", "mesa": "Una mesa de madera.", "barco": "Un barco en el mar.",
           "mono": "Un mono come plátanos.", "nube": "Una nube blanca."}


def spanish_reader(folder: Path) -> dict:
    """A speaker folder in Spanish (ogg recordings, transcripts, language.txt); prompt name -> true phones."""
    folder.mkdir(parents=True)
    (folder / "language.txt").write_text("es\n")
    (folder / "transcripts.txt").write_text("".join(f"{n}: {t}\n" for n, t in PHRASES.items()) + "sin: 12 $\n")
    truth = {}
    for i, (name, text) in enumerate(PHRASES.items()):
        audio, phones = reading(text, 140 + 20 * i)
        lead = 0.3 + 0.1 * i  # recordings carry silence around the speech
        pad = np.zeros(int(lead * SAMPLE_RATE), np.float32)
        soundfile.write(folder / f"{name}.ogg", np.concatenate([pad, audio, pad]), SAMPLE_RATE, format="OGG")
        truth[name] = [(s + lead, e + lead, n) for s, e, n in phones]
    return truth


def test_a_speaker_folder_in_another_language_is_aligned_and_its_partner_speaks_it(tmp_path):
    folder = tmp_path / "lector"
    truth = spanish_reader(folder)
    speaker = RecordedSpeaker(folder, tmp_path / "cache")
    assert speaker.language == "es"
    assert sorted(p.name for p in speaker.prompts) == sorted(PHRASES)  # digits and symbols are left out
    assert len(speaker.aligned()) == len(PHRASES)
    for prompt in speaker.prompts:
        u = speaker.utterance(prompt)
        assert [p[2] for p in u.phones] == [p[2] for p in truth[prompt.name]]
        starts = np.abs(np.array([p[0] for p in u.phones]) - np.array([p[0] for p in truth[prompt.name]]))
        assert np.median(starts) < 0.03, prompt.name
    assert {len(speaker.words(p.text)) for p in speaker.long_prompts()} >= {3}
    # a recording that is not its transcript read aloud (noise) costs more than MAX_COST: left out, from the cache too
    soundfile.write(folder / "ruido.wav", np.random.default_rng(0).normal(0, 0.1, 2 * SAMPLE_RATE), SAMPLE_RATE)
    with open(folder / "transcripts.txt", "a") as f:
        f.write("ruido: Una pelota de fútbol.\n")
    again = RecordedSpeaker(folder, tmp_path / "cache")
    noise = next(p for p in again.prompts if p.name == "ruido")
    assert again.alignment(noise) is None and again.cache_path(noise).is_file()
    assert sorted(p.name for p in again.aligned()) == sorted(PHRASES)
    # in a corpus, its clips go to test-real and the partner answers in Spanish
    specs, splits = plan(BuildConfig(tmp_path / "corpus", hours=1.0, speech_dirs=[str(folder)],
                                     cache_dir=str(tmp_path / "cache")))
    assert splits["recorded:lector"] == "test-real"
    real = [s for s in specs if s.split == "test-real"]
    assert real and all(s.self_voice.language == "es" for s in real)
    speaks_spanish = [s.other_voice.through_espeak and s.other_voice.language in ("", "es") for s in real]
    assert any(speaks_spanish)  # an MBROLA partner with another language's diphones, or festival/flite: English
    assert [s.language for s in real] == ["es" if ok else "en-us" for ok in speaks_spanish]


def test_tuxpaint_readers_become_speaker_folders(tmp_path):
    """A stamps tree laid out as Debian's tuxpaint-stamps-default lays it out."""
    stamps = tmp_path / "stamps" / "animals"
    stamps.mkdir(parents=True)
    for i, (name, text) in enumerate(PHRASES.items()):
        (stamps / f"{name}.txt").write_text(f"An English text.\nes.utf8={text}\nfr.utf8=Un texte.\n")
        audio, _ = reading(text, 160)
        soundfile.write(stamps / f"{name}_desc_es.ogg", audio, SAMPLE_RATE, format="OGG")
        soundfile.write(stamps / f"{name}_desc.ogg", audio, SAMPLE_RATE, format="OGG")  # English: left out
    out = tmp_path / "speakers"
    cmd = [sys.executable, str(ROOT / "scripts" / "tuxpaint_speakers.py"), "--stamps", str(tmp_path / "stamps"),
           "--out", str(out), "--min-recordings", "3"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"tuxpaint-es: {len(PHRASES)} recordings"
    speaker = RecordedSpeaker(out / "tuxpaint-es", tmp_path / "cache")
    assert speaker.language == "es" and len(speaker.prompts) == len(PHRASES)
    assert {p.text for p in speaker.prompts} == set(PHRASES.values())
    assert len(speaker.aligned()) == len(PHRASES)
    missing = subprocess.run(cmd[:3] + [str(tmp_path / "nowhere")] + cmd[4:], capture_output=True, text=True,
                             timeout=60)
    assert missing.returncode == 1 and "apt-get install tuxpaint-stamps-default" in missing.stderr


def test_language_txt_must_name_a_language_espeak_speaks(tmp_path):
    spanish_reader(tmp_path / "lector")
    (tmp_path / "lector" / "language.txt").write_text("\n")
    with pytest.raises(ValueError, match="language.txt is empty"):
        RecordedSpeaker(tmp_path / "lector", tmp_path / "cache")
    (tmp_path / "lector" / "language.txt").write_text("klingon\n")
    with pytest.raises(ValueError, match="'klingon', a language espeak-ng does not speak"):
        RecordedSpeaker(tmp_path / "lector", tmp_path / "cache")


def test_english_speakers_keep_their_alignment_cache_keys(tmp_path):
    """English folders align with pocketsphinx under the keys they had before other languages came."""
    speaker = RecordedSpeaker(ALLISON, tmp_path)
    assert speaker.language is None
    p = speaker.prompts[0]
    key = hashlib.sha1(p.wav.read_bytes() + p.text.encode() + bytes([ALIGNER_VERSION])).hexdigest()[:16]
    assert speaker.cache_path(p) == tmp_path / "allison" / f"{p.name}-{key}.json"
