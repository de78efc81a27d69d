"""Measuring and making voices: the speaker encoder and measured distances, catalog and dataset
voice reports, blended voices."""
