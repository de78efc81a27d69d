"""Build hook: the gRPC stubs are generated from proto/ on every build (see proto/generate.py),
before setuptools looks for the packages, so they are never stale and never edited by hand."""

import runpy
from pathlib import Path

from setuptools import setup

runpy.run_path(str(Path(__file__).parent / "proto" / "generate.py"))["generate"]()
setup()
