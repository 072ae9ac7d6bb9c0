"""Backchannel's calibration: rig maps, A/V latency, performance tiers."""
