"""What several commands share: the generator flag's help, JSON-object flags, whole-number checks."""
from __future__ import annotations

import argparse
import json

# every command that runs one generator takes the same spec (models.generator.parse_spec)
# The spec alone, for flags whose default is not the shipped default; GENERATOR_HELP for those whose is.
GENERATOR_SPEC_HELP = ('motion generator, "baseline" or "model", with options in brackets if any, e.g. '
                       '"model[temperature=0.5;sampler_steps=2]"')
GENERATOR_HELP = GENERATOR_SPEC_HELP + " (default: the shipped default)"


def json_object(text: str) -> dict:
    """argparse type of every flag that takes a JSON object (--style '{"expressiveness": 1.2}')."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise argparse.ArgumentTypeError(f"{text!r:.80} is not JSON: {e}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"{text!r:.80} is a JSON {type(value).__name__}; give an object, "
                                         "e.g. '{\"expressiveness\": 1.2}'")
    return value



def check_counts(args, low: int, *names: str) -> None:
    """Whole-number flags that must be at least `low`; None (not given) stands for the default, 0 never does."""
    for name in names:
        value = getattr(args, name)
        if value is not None and value < low:
            raise ValueError(f"--{name.replace('_', '-')} must be a whole number >= {low}, got {value}")
