"""The old path of `synth_server.messages` (renamed: `convert` means `synth convert` elsewhere).
Importing it gives the messages module itself, with a DeprecationWarning naming the new path."""

import sys
import warnings

from . import messages

warnings.warn("synth_server.convert moved to synth_server.messages", DeprecationWarning, stacklevel=2)
sys.modules[__name__] = messages
