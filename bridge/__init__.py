"""Backchannel's bridge: audio ingest, the session worker, outputs, the command line."""
