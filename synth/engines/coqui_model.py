"""Loading a Coqui (coqui-tts) VITS model for inference, apart from synthesizing with it: the model
by name (coqui's model manager downloads it into the model cache, or finds it there) or from a
folder, its checkpoint read weights-only (a file cannot run code), its speaker settings taken from
what the checkpoint holds, the network built and placed on its device. `load_vits(config)` gives a
`LoadedVits`; synth.engines.coqui speaks with it."""

from __future__ import annotations

import pickle  # only for its exception type: checkpoints load with weights_only
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, SynthError
from .config import CoquiConfig

CHECKPOINT_NAMES = ("model_file.pth", "model_file.pth.tar", "best_model.pth", "model.pth", "checkpoint.pth")
SPEAKER_FILES = ("speaker_ids.json", "speakers.json", "speakers.pth")
SPEAKER_INFO_FILES = ("speaker-info.txt", "speaker_info.txt", "speakers.tsv")


@dataclass
class LoadedVits:
    """A VITS network ready for inference, with what synthesis needs to know about it.
    `dvectors`: [speakers, dim] mean d-vectors in speaker-index order on the network's device
    (None for a model with a speaker table or one speaker)."""

    net: Any  # TTS.tts.models.vits.Vits, in eval mode on `device`
    folder: Path
    name: str  # the model's name (`tts_models/en/vctk/vits`) or its folder's
    sample_rate: int
    hop_length: int
    device: Any  # torch.device
    half: bool
    dvectors: Any = None


def import_coqui() -> Any:
    """torch, with a message naming the extra when coqui-tts is not installed."""
    try:
        import torch
        from TTS.config import load_config  # noqa: F401
        from TTS.tts.models.vits import Vits  # noqa: F401
    except ImportError as exc:
        raise SynthError(
            "the coqui engine needs coqui-tts with torch and torchaudio: pip install 'synth[coqui]'"
        ) from exc
    return torch


def load_vits(config: CoquiConfig) -> LoadedVits:
    """The model of `config` loaded, checked (a single-language VITS whose weights match its
    config and speakers file) and placed on its device, with its noise settings."""
    torch = import_coqui()
    folder, name = resolve_model(str(config.model), Path(config.model_cache) if config.model_cache else None)
    net, vits_config = build_vits(folder)
    dvectors = speaker_dvectors(net, torch)
    device = config.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise SynthError("device cuda: no CUDA device is available")
    half = bool(config.half and device == "cuda")
    net.to(torch.device(device))
    if dvectors is not None:
        dvectors = dvectors.to(torch.device(device))
    if half:
        net.half()
        dvectors = dvectors.half() if dvectors is not None else None
    net.eval()
    if config.noise_scale is not None:
        net.inference_noise_scale = config.noise_scale
    if config.noise_w_scale is not None:
        net.inference_noise_scale_dp = config.noise_w_scale
    return LoadedVits(
        net=net,
        folder=folder,
        name=name,
        sample_rate=int(vits_config.audio.sample_rate),
        hop_length=int(vits_config.audio.hop_length),
        device=torch.device(device),
        half=half,
        dvectors=dvectors,
    )


def build_vits(folder: Path) -> tuple[Any, Any]:
    """The network of a model folder with its checkpoint's weights (on the CPU), and its config."""
    from TTS.config import load_config
    from TTS.tts.models.vits import Vits

    config_path = folder / "config.json"
    if not config_path.is_file():
        raise SynthError(f"{folder}: no config.json")
    checkpoint = find_checkpoint(folder)
    vits: Any = load_config(str(config_path))  # coqui's VitsConfig
    if getattr(vits, "model", "") != "vits":
        raise SynthError(f"{config_path}: model {getattr(vits, 'model', '?')!r}; the coqui engine runs VITS")
    weights = read_weights(checkpoint)
    args = vits.model_args
    if getattr(args, "use_language_embedding", False):
        raise SynthError(
            f"{config_path}: a multilingual VITS (language embedding); the coqui engine "
            "runs single-language models"
        )
    configure_speakers(vits, folder, weights)
    args.init_discriminator = False  # inference only
    try:
        net = Vits(vits)
    except Exception as exc:  # phonemizer missing (espeak-ng), bad config values...
        raise SynthError(f"cannot build the VITS model of {folder}: {exc}") from exc
    try:
        missing, unexpected = net.load_state_dict(weights, strict=False)
    except RuntimeError as exc:  # shapes differ: another architecture, or a speakers file of another size
        raise SynthError(
            f"{checkpoint}: weights do not match config.json and the speakers "
            f"file: {str(exc).strip().splitlines()[-1].strip()}"
        ) from exc
    if missing or unexpected:
        raise SynthError(
            f"{checkpoint}: weights do not match config.json (missing {missing[:3]}, "
            f"unexpected {unexpected[:3]})"
        )
    return net, vits


def find_file(folder: Path, names: Sequence[str]) -> Path | None:
    """The first of `names` that is a file in `folder`, else None."""
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_model(model: str, cache: Path | None) -> tuple[Path, str]:
    """A model folder and the model's name: a folder as given, else a name coqui's model manager
    downloads into `cache` (or finds there)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve(), path.name
    if path.exists() or model.startswith((".", "/", "~")):
        raise ConfigError("model", "expected a folder with config.json and a checkpoint", model)
    from TTS.utils.manage import ModelManager

    try:
        manager = ModelManager(output_prefix=str(cache) if cache else None, progress_bar=False)
        checkpoint, _config, _item = manager.download_model(model)
    except Exception as exc:  # unknown name, or no network to download it
        raise ConfigError(
            "model",
            f"cannot load it by name ({exc}); give a local "
            "model folder, or run once where the model hub is reachable",
            model,
        ) from exc
    return Path(checkpoint).parent, model


def find_checkpoint(folder: Path) -> Path:
    """A known checkpoint name, else the newest `checkpoint_*.pth`, else the only other .pth."""
    found = find_file(folder, CHECKPOINT_NAMES)
    if found:
        return found
    numbered = sorted(folder.glob("checkpoint_*.pth"), key=lambda p: int(re.sub(r"\D", "", p.stem) or 0))
    if numbered:
        return numbered[-1]
    others = [p for p in folder.glob("*.pth") if p.name not in ("speakers.pth", "d_vector_file.pth")]
    if len(others) == 1:
        return others[0]
    raise SynthError(
        f"{folder}: no checkpoint ({', '.join(CHECKPOINT_NAMES)} or checkpoint_*.pth)"
        + (f"; several candidates: {sorted(p.name for p in others)}" if others else "")
    )


def read_weights(checkpoint: Path) -> dict[str, Any]:
    """The checkpoint's model weights, read weights-only (torch >= 2.4), as coqui loads them: a
    checkpoint that holds a pickled object is refused with what to save instead."""
    import torch
    from trainer.io import load_fsspec  # coqui-tts-trainer: how coqui itself loads checkpoints

    try:
        state = load_fsspec(str(checkpoint), map_location=torch.device("cpu"))
    except pickle.UnpicklingError as exc:
        found = re.search(r"Unsupported global: GLOBAL (\S+)", str(exc))
        raise SynthError(
            f"{checkpoint}: holds a pickled Python object ({found.group(1) if found else '?'}); "
            "checkpoints load weights-only, as coqui loads them, so that a file cannot run "
            "code: save the config as a dict (config.to_dict(), as coqui's trainer does) "
            "or only {'model': state_dict}"
        ) from None
    except Exception as exc:
        raise SynthError(f"{checkpoint}: cannot read the checkpoint ({exc})") from exc
    weights = state.get("model", state) if isinstance(state, dict) else None
    if not isinstance(weights, dict):
        raise SynthError(f"{checkpoint}: not a model checkpoint (expected a state dict)")
    return {k: v for k, v in weights.items() if not k.startswith(("disc.", "speaker_encoder."))}


def speakers_file(folder: Path, configured: str | None, defaults: Sequence[str]) -> Path | None:
    """The config's file if it exists, else a file of that name in the model folder (configs
    keep the training machine's absolute paths), else the first of `defaults` there."""
    if configured:
        given = Path(configured)
        if given.is_file():
            return given
        if (folder / given.name).is_file():
            return folder / given.name
    return find_file(folder, defaults)


def configure_speakers(config: Any, folder: Path, weights: dict[str, Any]) -> None:
    """Speaker settings from what the checkpoint holds: a speaker embedding table (`emb_g`,
    rows named by the speakers file, or by `config.speakers`, or `speaker<i>` when neither
    exists, as older models were saved) or d-vectors (`use_d_vector_file`: one mean
    embedding per speaker name), else one voice."""
    args = config.model_args
    table = weights.get("emb_g.weight")
    if table is not None:
        args.use_speaker_embedding, args.use_d_vector_file = True, False
        args.num_speakers = int(table.shape[0])
        found = speakers_file(folder, getattr(args, "speakers_file", None), SPEAKER_FILES)
        args.speakers_file = str(found) if found else None
        if not found and not config.get("speakers"):
            config.speakers = [f"speaker{i}" for i in range(args.num_speakers)]
        return
    args.use_speaker_embedding = False
    args.speakers_file = None
    if getattr(args, "use_d_vector_file", False):
        configured = args.d_vector_file
        first = configured[0] if isinstance(configured, list) and configured else configured
        found = speakers_file(folder, first, ("speakers.pth", "speakers.json", "d_vector_file.pth"))
        if found is None:
            raise SynthError(
                f"{folder}: the model takes d-vectors but its d_vector_file "
                f"({configured}) is neither there nor in the model folder"
            )
        args.d_vector_file = str(found)
        config.d_vector_file = str(found)


def speaker_dvectors(net: Any, torch: Any) -> Any:
    """[speakers, dim] mean d-vectors in speaker-index order (on the CPU), or None for a model
    that does not take d-vectors."""
    manager = net.speaker_manager
    if not net.args.use_d_vector_file or manager is None:
        return None
    names = sorted(manager.name_to_id, key=manager.name_to_id.get)
    if not names:
        raise SynthError(f"{net.args.d_vector_file}: no speakers in the d-vector file")
    return torch.tensor(np.stack([manager.get_mean_embedding(n) for n in names]), dtype=torch.float32)
