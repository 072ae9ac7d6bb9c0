"""The bundled demo conversation: self is a real recorded speaker, other a synthetic voice; clean audio, full
labels, written in the clip-folder form (storage.write_clip_folder) with an attribution file."""
from __future__ import annotations

from pathlib import Path

from backchannel.models.corpus.clip import Clip, ClipSpec, make_clip
from backchannel.models.corpus.storage import write_clip_folder
from backchannel.models.corpus.voices import catalog

PARTNER = "espeak:Annie"  # an English-speaking espeak-ng variant as the partner


def _good(clip: Clip) -> bool:
    """A demo should show the whole range: several turns each side, backchannels both ways, a laugh."""
    segs = clip.meta["segments"]
    count = lambda track, kind: sum(s["track"] == track and s["kind"] == kind for s in segs)  # noqa: E731
    return (count("self", "turn") >= 3 and count("other", "turn") >= 3 and count("self", "backchannel") >= 1
            and count("other", "backchannel") >= 1 and count("self", "laugh") + count("other", "laugh") >= 1)


def make_sample(speech_dir: str | Path, out: str | Path, seed: int = 0, seconds: float = 25.0,
                partner: str = PARTNER, cache_dir: str | None = None, tries: int = 200) -> tuple[Path, dict]:
    """Write the sample to `out`; returns (folder, metadata). Seeds from `seed` up are tried until the
    conversation has several turns on each side, backchannels both ways and a laugh (deterministic for a
    seed)."""
    voices = {v.id: v for v in catalog([speech_dir])}
    self_voice = next(v for v in voices.values() if v.engine == "recorded")
    if partner not in voices:
        raise ValueError(f"partner voice {partner!r} is not available here")
    for s in range(seed, seed + tries):
        spec = ClipSpec("sample", "sample", (s, 0, 1), seconds, self_voice, voices[partner], "en-us", augment=0.0,
                        cache_dir=cache_dir, scenario="dialogue")
        clip = make_clip(spec)
        if _good(clip):
            break
    else:
        raise RuntimeError(f"no seed in {seed}..{seed + tries - 1} gave a varied enough conversation")
    clip.meta["source"] = "recorded self + synthetic other"
    out = Path(out)
    write_clip_folder(out, clip)
    _attribution(out, clip)
    return out, clip.meta


def _attribution(out: Path, clip: Clip) -> None:
    prompts = sorted({s["prompt"] for s in clip.meta["segments"] if "prompt" in s})
    other = clip.meta["voices"]["other"]
    (out / "ATTRIBUTION.md").write_text(
        "# Demo conversation: sources and licences\n\n"
        f"- `self.wav`: real speech by **Allison Smith** (http://www.theivrvoice.com), from the Asterisk core "
        f"sounds (asterisk-core-sounds, financial contributions by Digium, Inc.), licensed **CC-BY-SA-3.0**. "
        f"Prompts used: {', '.join(prompts)}; cut, placed in time and resampled to 16 kHz here. The synthetic "
        f"laughs and the silence between prompts are ours. This file and `self.wav` are shared under "
        f"CC-BY-SA-3.0 as well.\n"
        f"- `other.wav`: synthesised with espeak-ng (voice `{other['language']}+{other['voice']}`).\n"
        f"- `motion.npz` (motion (T, 62) float32 at 30 fps, state (T,) int8) and `meta.json`: procedural labels "
        f"from Backchannel's corpus generator (docs/dataset.md).\n\n"
        "Regenerate with `backchannel data sample --speech-dir models/assets/speech/allison "
        "--out models/assets/sample`.\n")
