"""The Festvox family: festival (Scheme, segment end times from its Segment relation) and flite (`-psdur`).

Both speak English through the CMU lexicon and report ARPAbet phones, converted to IPA here. festival names
each segment's word; flite prints only phones, so its words are matched onto the phones with the CMU
pronouncing dictionary that pocketsphinx ships.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from functools import lru_cache
from pathlib import Path

import numpy as np

from backchannel.models.audio import load_audio
from backchannel.models.corpus.utterance import Utterance
from backchannel.models.phones import arpabet_to_ipa


def festival_voices() -> list[str]:
    """Installed festival voices, e.g. ["kal_diphone"] (empty when festival is missing)."""
    if shutil.which("festival") is None:
        return []
    found = []
    for root in ("/usr/share/festival/voices", "/usr/local/share/festival/voices"):
        for d in sorted(Path(root).glob("*/*")):
            if d.is_dir() and (d / "festvox").is_dir():
                found.append(d.name)
    return found


@lru_cache(maxsize=1)
def flite_voices() -> list[str]:
    """Voices compiled into flite that report phone timings, e.g. ["kal", "awb", "rms", "slt", ...] (empty when flite
    is missing). Some cannot: Debian's awb_time prints only a pause for `-psdur`, so every clip planned for it failed
    (10 of the 8-hour corpus's 960); a 20 ms probe per voice leaves such voices out of the plan."""
    if shutil.which("flite") is None:
        return []
    out = subprocess.run(["flite", "-lv"], capture_output=True, text=True, timeout=30).stdout
    names = out.split(":", 1)[1].split() if ":" in out else []
    return [v for v in names if _flite_phones(_flite_run(["-voice", v, "-psdur", "-t", "timing", "-o", "none"]))]


def _flite_run(args: list[str]) -> str:
    proc = subprocess.run(["flite", *args], capture_output=True, text=True, timeout=60)
    if proc.returncode != 0:
        raise RuntimeError(f"flite failed: {proc.stderr.strip()[-300:]}")
    return proc.stdout


def _flite_phones(psdur: str) -> list[tuple[float, float, str]]:
    """(start, end, ipa) of the phones in flite's `-psdur` output ("pau:0.220 t:0.323 ..."), pauses left out."""
    phones, start = [], 0.0
    for item in psdur.split():
        name, _, end = item.rpartition(":")
        end = float(end)
        ipa = arpabet_to_ipa(name)
        if ipa is not None and end > start:
            phones.append((round(start, 4), round(end, 4), ipa))
        start = end
    return phones


def _scheme_string(text: str) -> str:
    return '"' + text.replace("\\", " ").replace('"', " ") + '"'


def festival_synth(texts: list[str], voice: str, stretch: float = 1.0, f0_mean: float | None = None
                   ) -> list[Utterance]:
    """Speak each text with one festival process (it takes ~0.5 s to start, so batch)."""
    if not texts:
        return []
    with tempfile.TemporaryDirectory(prefix="bc-festival-") as tmp:
        lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
        if f0_mean is not None:  # the linear-regression intonation model reads its target mean from this alist
            lines.append(f"(set! int_lr_params (cons (list 'target_f0_mean {f0_mean:.1f}) int_lr_params))")
        for i, text in enumerate(texts):
            lines += [
                f"(set! u (utt.synth (Utterance Text {_scheme_string(text)})))",
                f'(utt.save.wave u "{tmp}/{i}.wav" \'riff)',
                f'(format t "#utt {i}\\n")',
                "(mapcar (lambda (s) (format t \"%s %s %s\\n\" (item.name s) (item.feat s \"end\")"
                " (item.feat s \"R:SylStructure.parent.parent.name\"))) (utt.relation.items u 'Segment))",
            ]
        script = Path(tmp, "say.scm")
        script.write_text("\n".join(lines) + "\n")
        proc = subprocess.run(["festival", "-b", str(script)], capture_output=True, text=True, timeout=300)
        if "#utt" not in proc.stdout:
            raise RuntimeError(f"festival failed: {(proc.stderr or proc.stdout).strip()[-300:]}")
        blocks = proc.stdout.split("#utt ")[1:]
        utterances = []
        for i, (text, block) in enumerate(zip(texts, blocks)):
            segs = [line.split() for line in block.splitlines()[1:] if len(line.split()) == 3]
            phones, words, start, prev_word = [], [], 0.0, None
            for name, end, word in segs:
                end = float(end)
                ipa = arpabet_to_ipa(name)
                if ipa is not None and end > start:
                    phones.append((round(start, 4), round(end, 4), ipa))
                    if word == prev_word:  # a word's segments are consecutive; a pause in between ends it
                        words[-1] = (words[-1][0], round(end, 4), word)
                    else:
                        words.append((round(start, 4), round(end, 4), word))
                prev_word = word if ipa is not None else None
                start = end
            utterances.append(Utterance(load_audio(Path(tmp, f"{i}.wav")), phones, words, text))
        return utterances


def flite_synth(text: str, voice: str, stretch: float = 1.0, f0_mean: float | None = None) -> Utterance:
    with tempfile.TemporaryDirectory(prefix="bc-flite-") as tmp:
        wav = os.path.join(tmp, "out.wav")
        args = ["-voice", voice, "--setf", f"duration_stretch={stretch:.3f}", "-psdur"]
        if f0_mean is not None:
            args += ["--setf", f"int_f0_target_mean={f0_mean:.1f}"]
        psdur = _flite_run(args + ["-t", text, "-o", wav])
        if not os.path.exists(wav):
            raise RuntimeError(f"flite wrote no audio for voice {voice}")
        audio = load_audio(wav)
    phones = _flite_phones(psdur)
    return Utterance(audio, phones, match_words(text, phones), text)


def words_of(text: str) -> list[str]:
    """The words the CMU-lexicon engines say: lower case, letters and apostrophes."""
    return re.findall(r"[a-z']+", text.lower())


@lru_cache(maxsize=1)
def cmudict() -> dict[str, list[list[str]]]:
    """word -> pronunciations (IPA phone lists) from pocketsphinx's CMU dictionary."""
    from pocketsphinx import get_model_path

    pron: dict[str, list[list[str]]] = {}
    with open(Path(get_model_path(), "en-us", "cmudict-en-us.dict"), encoding="utf-8") as f:
        for line in f:
            parts = line.split()
            if len(parts) < 2:
                continue
            word = re.sub(r"\(\d+\)$", "", parts[0])
            pron.setdefault(word, []).append([arpabet_to_ipa(p) for p in parts[1:]])
    return pron


class WordMatchError(ValueError):
    """The text's words cannot be laid onto the phones the engine said."""


def match_words(text: str, phones: list) -> list:
    """Split the phone sequence into the text's words: dynamic programming over where each word ends, scoring
    each word's best dictionary pronunciation against its phones by edit distance (words missing from the
    dictionary cost their letter count / 2 phones). Every word gets at least one phone and at most about twice
    its pronunciation; WordMatchError when no split does that (fewer phones than words, say)."""
    words, names = words_of(text), [p[2] for p in phones]
    if not words:
        return []
    if len(names) < len(words):
        raise WordMatchError(f"cannot match {len(words)} words onto {len(names)} phones: {text[:60]!r}")
    lex = cmudict()
    prons = [lex.get(w) or [["?"] * max(1, len(w) // 2)] for w in words]
    n, m = len(words), len(names)
    inf = float("inf")
    cost = np.full((n + 1, m + 1), inf)
    back = np.zeros((n + 1, m + 1), int)
    cost[0, 0] = 0.0
    for i in range(1, n + 1):
        longest = 2 * max(len(p) for p in prons[i - 1]) + 3
        for j in range(i, m + 1):
            for k in range(max(i - 1, j - longest), j):  # word i covers phones k..j-1
                if cost[i - 1, k] == inf:
                    continue
                c = cost[i - 1, k] + min(_edit(names[k:j], p) for p in prons[i - 1])
                if c < cost[i, j]:
                    cost[i, j], back[i, j] = c, k
    if cost[n, m] == inf:
        raise WordMatchError(f"cannot match the words of {text[:60]!r} onto its {m} phones")
    spans, j = [], m
    for i in range(n, 0, -1):
        k = back[i, j]
        spans.append((phones[k][0], phones[j - 1][1], words[i - 1]))
        j = k
    return spans[::-1]


def _edit(a: list[str], b: list[str]) -> int:
    d = list(range(len(b) + 1))
    for x in a:
        prev, d[0] = d[0], d[0] + 1
        for j, y in enumerate(b, 1):
            prev, d[j] = d[j], min(d[j] + 1, d[j - 1] + 1, prev + (x != y))
    return d[-1]
