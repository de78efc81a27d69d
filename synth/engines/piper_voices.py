"""Piper voices by name (`en_US-libritts_r-medium`), kept in a model cache: downloaded once from
the voice repository (Piper's own, rhasspy/piper-voices, by default; any base URL, `file://`
included, with `SYNTH_PIPER_VOICES_URL`), then used from the cache with no network. The cache is
the folder the container mounts (`--model-cache`, `SYNTH_MODEL_CACHE`); voices live in its
`piper/` folder as Piper ships them, NAME.onnx beside NAME.onnx.json.

The repository layout is Piper's (piper/download_voices.py):
`<base>/<lang>/<lang>_<REGION>/<name>/<quality>/<lang>_<REGION>-<name>-<quality>.onnx[.json]`."""

from __future__ import annotations

import os
import re
import shutil
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from ..errors import ConfigError, NotAvailable

DEFAULT_REPOSITORY = "https://huggingface.co/rhasspy/piper-voices/resolve/main"
REPOSITORY_ENV = "SYNTH_PIPER_VOICES_URL"
CACHE_ENV = "SYNTH_MODEL_CACHE"
VOICE_NAME = re.compile(
    r"^(?P<lang>[a-z]{2,3})_(?P<region>[A-Z]{2})-(?P<name>[^-/\s]+)-(?P<quality>[a-z_]+)$"
)
SUFFIXES = (".onnx", ".onnx.json")


def is_voice_name(model: str) -> bool:
    """Whether `model` is a Piper voice name (en_US-libritts_r-medium) rather than a file."""
    return VOICE_NAME.match(model) is not None


def default_cache() -> Path:
    """`SYNTH_MODEL_CACHE`, else ~/.cache/synth/models."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "synth" / "models"


def voice_url(name: str, suffix: str, repository: str | None = None) -> str:
    """Where a voice's file (`suffix`: .onnx or .onnx.json) is: in `repository`, else
    SYNTH_PIPER_VOICES_URL, else Piper's own."""
    m = VOICE_NAME.match(name)
    if m is None:
        raise ConfigError("model", "expected a Piper voice name like en_US-libritts_r-medium", name)
    base = (repository or os.environ.get(REPOSITORY_ENV) or DEFAULT_REPOSITORY).rstrip("/")
    lang, region = m["lang"], f"{m['lang']}_{m['region']}"
    return f"{base}/{lang}/{region}/{m['name']}/{m['quality']}/{name}{suffix}"


def cached_voice(name: str, cache: Path | None = None) -> Path:
    """Where voice `name` lives in the cache (NAME.onnx; its config beside it)."""
    return (cache or default_cache()) / "piper" / f"{name}.onnx"


def fetch_voice(name: str, cache: Path | None = None, repository: str | None = None) -> Path:
    """The voice's .onnx in the cache, downloading it (both files, each written to a temporary
    name and renamed, so an interrupted download never leaves a half file) when it is not
    there yet. Offline with a filled cache, nothing is fetched."""
    model = cached_voice(name, cache)
    if all(model.with_name(f"{name}{s}").is_file() for s in SUFFIXES):
        return model
    model.parent.mkdir(parents=True, exist_ok=True)
    for suffix in SUFFIXES:
        target = model.with_name(f"{name}{suffix}")
        if target.is_file() and target.stat().st_size:
            continue
        url = voice_url(name, suffix, repository)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.part")
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as fh:
                shutil.copyfileobj(response, fh)
            os.replace(tmp, target)
        except (urllib.error.URLError, OSError, ValueError) as exc:
            tmp.unlink(missing_ok=True)
            raise NotAvailable(
                "model",
                f"Piper voice {name} is not in the model cache {model.parent} and could not be "
                f"downloaded from {url} ({exc}); on a machine with network run "
                f"`synth voices --model {name} --model-cache {model.parent.parent}` and copy that "
                f"folder here, or put {name}.onnx and {name}.onnx.json into {model.parent}",
                name,
            ) from None
    return model
