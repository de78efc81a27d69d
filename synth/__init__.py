"""synth: text dialogs in, multi-speaker conversational speech datasets out."""

__version__ = "0.1.0"
