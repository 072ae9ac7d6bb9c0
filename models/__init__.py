"""Backchannel's models: motion representation, audio features, generators (rule baseline, INFP-style diffusion)."""
