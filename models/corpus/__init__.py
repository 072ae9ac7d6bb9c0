"""The synthetic dyadic corpus (docs/dataset.md): two voice tracks with real turn-taking and frame-accurate motion
labels for the self avatar.

Data flows one way, one job per module:

    text, laugh ─┐
    espeak, festival, recorded ─> voices (Speaker: Utterance = 16 kHz audio + timed IPA phones and words)
      -> dialogue (who says what when)
      -> clip (render both tracks; labels: visemes (lips) + behaviour (head, gaze, blinks, brows, smiles, roles);
               augment (recording conditions))
      -> storage (npz shards) -> build (all usable CPUs, resumable) / dataset (clips, audio windows) / stats, show,
         sample
"""
