"""Readers of recorded-speech corpora. Each yields RecordedGroup or DialogError lazily."""
