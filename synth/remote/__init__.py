"""Talking to synth servers: the batch client."""
