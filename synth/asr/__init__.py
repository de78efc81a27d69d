"""Speech recognition: faster-whisper transcription (recognizer), forced alignment of known
transcripts (alignment) and word error rate (wer)."""
