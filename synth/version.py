"""The package version, in a module of its own so that stages can record it without importing
the package's public face (which imports them)."""

__version__ = "0.1.0"
