"""Coqui TTS (the maintained `coqui-tts` fork) multi-speaker VITS, batched on the GPU or CPU.

A model is a name (`tts_models/en/vctk/vits`: coqui's model manager downloads it into the model
cache on machines that reach the hub, or finds it there) or a local folder with `config.json`, a
checkpoint (`model_file.pth`, `best_model.pth`, `model.pth`, `checkpoint*.pth`) and a speakers file
(`speaker_ids.json` / `speakers.json` / `speakers.pth`; a d-vector file for d-vector models). Every
speaker becomes a voice; gender and accent come from a VCTK-style `speaker-info.txt` (found beside
the model, or given), matched by speaker NAME: a model's speaker indices follow its training order,
not the corpus table's.

Batched synthesis: one forward pass for many turns of any speakers. Turns are sorted by length
(similar lengths share a pass), padded, run with `x_lengths` and `speaker_ids`, and each output is
cut to its own length from the duration mask (`y_mask` frames x hop length). The HiFi-GAN decoder
has no masks of its own, so every decoder convolution on the time axis (not the speaker
conditioning) gets a pre-hook that zeroes the frames past each item's length, exactly what that
convolution sees when the item runs alone: with noise off, a turn synthesized in a batch equals the
turn synthesized alone (float tolerance), same length."""

from __future__ import annotations

import pickle  # only for its exception type: checkpoints load with weights_only
import re
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..errors import ConfigError, SynthError
from ..ids import slug
from ..words import Words, align_units
from .base import EngineAudio, SynthesisRequest, speaker_distance
from .blends import Blend, read_blends
from .config import CoquiConfig
from .speakers import read_speaker_info, speaker_key

CHECKPOINT_NAMES = ("model_file.pth", "model_file.pth.tar", "best_model.pth", "model.pth", "checkpoint.pth")
SPEAKER_FILES = ("speaker_ids.json", "speakers.json", "speakers.pth")
SPEAKER_INFO_FILES = ("speaker-info.txt", "speaker_info.txt", "speakers.tsv")


def _find(folder: Path, names: Sequence[str]) -> Path | None:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    return None


class CoquiEngine:
    name = "coqui"

    def __init__(self, config: CoquiConfig, max_batch: int = 64):
        try:
            import torch
            from TTS.config import load_config
            from TTS.tts.models.vits import Vits
        except ImportError as exc:
            raise SynthError(
                "the coqui engine needs coqui-tts with torch and torchaudio: pip install 'synth[coqui]'"
            ) from exc
        self._torch = torch
        self.settings = config
        model, device, half = config.model, config.device, config.half
        noise_scale, noise_w_scale = config.noise_scale, config.noise_w_scale
        speaker_info = Path(config.speaker_info) if config.speaker_info else None
        folder, model_name = self._resolve(
            str(model), Path(config.model_cache) if config.model_cache else None
        )
        config_path = folder / "config.json"
        if not config_path.is_file():
            raise SynthError(f"{folder}: no config.json")
        checkpoint = self._checkpoint(folder)
        vits: Any = load_config(str(config_path))  # coqui's VitsConfig
        if getattr(vits, "model", "") != "vits":
            raise SynthError(
                f"{config_path}: model {getattr(vits, 'model', '?')!r}; the coqui engine runs VITS"
            )
        weights = self._read_weights(checkpoint)
        args = vits.model_args
        if getattr(args, "use_language_embedding", False):
            raise SynthError(
                f"{config_path}: a multilingual VITS (language embedding); the coqui engine "
                "runs single-language models"
            )
        self._configure_speakers(vits, folder, weights)
        args.init_discriminator = False  # inference only
        try:
            self.net = Vits(vits)
        except Exception as exc:  # phonemizer missing (espeak-ng), bad config values...
            raise SynthError(f"cannot build the VITS model of {folder}: {exc}") from exc
        try:
            missing, unexpected = self.net.load_state_dict(weights, strict=False)
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
        self._dvectors = self._speaker_dvectors()
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cuda" and not torch.cuda.is_available():
            raise SynthError("device cuda: no CUDA device is available")
        self.device = torch.device(device)
        self.half = bool(half and device == "cuda")
        self.net.to(self.device)
        if self._dvectors is not None:
            self._dvectors = self._dvectors.to(self.device)
        if self.half:
            self.net.half()
            self._dvectors = self._dvectors.half() if self._dvectors is not None else None
        self.net.eval()
        if noise_scale is not None:
            self.net.inference_noise_scale = noise_scale
        if noise_w_scale is not None:
            self.net.inference_noise_scale_dp = noise_w_scale
        self.model = model_name
        self.sample_rate = int(vits.audio.sample_rate)
        self.hop_length = int(vits.audio.hop_length)
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._valid_frames: Any = None  # per-item decoder input frames during a batched pass
        self._frames = 0
        self._install_decoder_masks()
        self._unit_cache: dict[str, tuple[int, ...]] = {}  # word -> its spoken symbols said alone
        info_path = speaker_info or _find(folder, SPEAKER_INFO_FILES)
        self._speaker_meta = read_speaker_info(info_path) if info_path else {}
        self._voices = self._build_voices(
            slug(model_name.split("/")[-2] if "/" in model_name else model_name)
        )
        if self.settings.blends:
            self._voices += self._add_blends(read_blends(Path(self.settings.blends)))

    def _add_blends(self, recipes: list[Blend]) -> list[Voice]:
        """New voices mixed from the speakers' embeddings: each recipe's weighted sum of its
        parents' rows becomes a new row of the speaker table (or of the d-vectors), so a blended
        voice is one more speaker index and batches like any other."""
        torch = self._torch
        by_speaker = {v.speaker: v for v in self._voices}
        table = self._dvectors if self._dvectors is not None else getattr(self.net, "emb_g", None)
        if table is None:
            raise ConfigError("blends", "this model has no speaker embeddings to blend", self.settings.blends)
        rows = table if isinstance(table, torch.Tensor) else table.weight.data
        new_rows: list[Any] = []
        voices: list[Voice] = []
        for recipe in recipes:
            unknown = [p for p, _ in recipe.parents if p not in by_speaker]
            if unknown:
                raise ConfigError("blends", f"{recipe.id}: no speaker {unknown[0]!r} in {self.model}")
            mix = sum(w * rows[int(by_speaker[p].params["speaker_index"])].float() for p, w in recipe.parents)
            new_rows.append(mix.to(rows.dtype))
            voices.append(
                Voice(
                    id=recipe.id,
                    engine=self.name,
                    model=self.model,
                    speaker=recipe.id,
                    params={"speaker_index": rows.shape[0] + len(voices)},
                    meta={"base_speaker": recipe.id, "blend": [[p, w] for p, w in recipe.parents]},
                )
            )
        grown = torch.cat([rows, torch.stack(new_rows)])
        if self._dvectors is not None:
            self._dvectors = grown
        else:
            self.net.emb_g = torch.nn.Embedding.from_pretrained(grown, freeze=True)
        return voices

    @staticmethod
    def _resolve(model: str, cache: Path | None) -> tuple[Path, str]:
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

    @staticmethod
    def _checkpoint(folder: Path) -> Path:
        """A known checkpoint name, else the newest `checkpoint_*.pth`, else the only other .pth."""
        found = _find(folder, CHECKPOINT_NAMES)
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

    @staticmethod
    def _speakers_file(folder: Path, configured: str | None, defaults: Sequence[str]) -> Path | None:
        """The config's file if it exists, else a file of that name in the model folder (configs
        keep the training machine's absolute paths), else the first of `defaults` there."""
        if configured:
            given = Path(configured)
            if given.is_file():
                return given
            if (folder / given.name).is_file():
                return folder / given.name
        return _find(folder, defaults)

    def _configure_speakers(self, config: Any, folder: Path, weights: dict[str, Any]) -> None:
        """Speaker settings from what the checkpoint holds: a speaker embedding table (`emb_g`,
        rows named by the speakers file, or by `config.speakers`, or `speaker<i>` when neither
        exists, as older models were saved) or d-vectors (`use_d_vector_file`: one mean
        embedding per speaker name), else one voice."""
        args = config.model_args
        table = weights.get("emb_g.weight")
        if table is not None:
            args.use_speaker_embedding, args.use_d_vector_file = True, False
            args.num_speakers = int(table.shape[0])
            found = self._speakers_file(folder, getattr(args, "speakers_file", None), SPEAKER_FILES)
            args.speakers_file = str(found) if found else None
            if not found and not config.get("speakers"):
                config.speakers = [f"speaker{i}" for i in range(args.num_speakers)]
            return
        args.use_speaker_embedding = False
        args.speakers_file = None
        if getattr(args, "use_d_vector_file", False):
            configured = args.d_vector_file
            first = configured[0] if isinstance(configured, list) and configured else configured
            found = self._speakers_file(folder, first, ("speakers.pth", "speakers.json", "d_vector_file.pth"))
            if found is None:
                raise SynthError(
                    f"{folder}: the model takes d-vectors but its d_vector_file "
                    f"({configured}) is neither there nor in the model folder"
                )
            args.d_vector_file = str(found)
            config.d_vector_file = str(found)

    def _speaker_dvectors(self) -> Any:
        """[speakers, dim] mean d-vectors in speaker-index order, on the model's device later."""
        manager = self.net.speaker_manager
        if not self.net.args.use_d_vector_file or manager is None:
            return None
        names = sorted(manager.name_to_id, key=manager.name_to_id.get)
        if not names:
            raise SynthError(f"{self.net.args.d_vector_file}: no speakers in the d-vector file")
        return self._torch.tensor(
            np.stack([manager.get_mean_embedding(n) for n in names]), dtype=self._torch.float32
        )

    def _read_weights(self, checkpoint: Path) -> dict[str, Any]:
        from trainer.io import load_fsspec  # coqui-tts-trainer: how coqui itself loads checkpoints

        try:  # weights_only (torch >= 2.4), as coqui loads: a checkpoint cannot run code
            state = load_fsspec(str(checkpoint), map_location=self._torch.device("cpu"))
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

    def _install_decoder_masks(self) -> None:
        torch = self._torch
        decoder = self.net.waveform_decoder

        def mask(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            valid = self._valid_frames
            if valid is None:
                return None
            x = args[0]
            if x.shape[-1] < self._frames:  # not on the decoder's time axis
                return None
            factor = x.shape[-1] // self._frames
            keep = torch.arange(x.shape[-1], device=x.device)[None, :] < (valid * factor)[:, None]
            return (x * keep[:, None, :].to(x.dtype), *args[1:])

        # The speaker conditioning (`cond_layer`, `conds`) sees one global frame, not time: masking
        # it would silence the speaker in the decoder.
        speaker_conds = {
            id(m) for name, m in decoder.named_modules() if name.split(".")[0] in ("cond_layer", "conds")
        }
        for module in decoder.modules():
            if (
                isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d))
                and id(module) not in speaker_conds
            ):
                module.register_forward_pre_hook(mask)

    def _build_voices(self, prefix: str) -> list[Voice]:
        manager = self.net.speaker_manager
        count = int(getattr(self.net.args, "num_speakers", 0) or 0)
        if manager is not None and manager.name_to_id:
            names: dict[str, int | None] = dict(manager.name_to_id)
        elif count:
            names = {f"speaker{i}": i for i in range(count)}  # no speakers file: rows by index
        else:
            names = {"default": None}
        voices = []
        for name, idx in sorted(names.items(), key=lambda kv: (kv[1] is None, kv[1])):
            meta = dict(self._speaker_meta.get(speaker_key(name), {}))
            voices.append(
                Voice(
                    id=f"{prefix}-{name}",
                    engine=self.name,
                    model=self.model,
                    speaker=name,
                    params={"speaker_index": idx},
                    meta={"base_speaker": name, **meta},
                )
            )
        return voices

    def voices(self) -> list[Voice]:
        return list(self._voices)

    @property
    def deterministic(self) -> bool:
        """Whether a text and voice always give the same audio (VITS noise off)."""
        return self.net.inference_noise_scale == 0 and self.net.inference_noise_scale_dp == 0

    def voice_distance(self, a: Voice, b: Voice) -> float:
        """Speakers of the model are different people: 1.0 apart, 0.0 to themselves."""
        return speaker_distance(a, b)

    def describe(self) -> dict[str, object]:
        return {
            "engine": self.name,
            "model": self.model,
            "device": str(self.device),
            "half": self.half,
            "native_sample_rate": self.sample_rate,
            "noise_scale": float(self.net.inference_noise_scale),
            "noise_w_scale": float(self.net.inference_noise_scale_dp),
        }

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        if not requests:
            return []
        encoded = [self.net.tokenizer.text_to_ids(r.text) for r in requests]
        order = sorted(range(len(requests)), key=lambda i: -len(encoded[i]))
        out: list[EngineAudio | None] = [None] * len(requests)
        with self._lock:
            for start in range(0, len(order), self.max_batch):
                chunk = order[start : start + self.max_batch]
                audio, frames = self._forward(
                    [encoded[i] for i in chunk],
                    [requests[i].voice.params.get("speaker_index") for i in chunk],
                )
                for i, a, f in zip(chunk, audio, frames):
                    words = self._words(requests[i].text, encoded[i], f)
                    out[i] = EngineAudio(samples=a, sample_rate=float(self.sample_rate), words=words)
        return [a for a in out if a is not None]

    def _unspoken(self, token_id: int) -> bool:
        chars = self.net.tokenizer.characters
        if token_id in {chars.blank_id, chars.bos_id, chars.eos_id, chars.pad_id}:
            return True
        char = chars.id_to_char(token_id)
        return not char.strip() or char in (chars.punctuations or "")

    def _words(self, text: str, ids: list[int], frames: np.ndarray) -> Words:
        """The words of `text` timed from the duration predictor's frames per input symbol
        (symbols between words: blanks, spaces, punctuation), like Piper's alignments."""
        at, stream = 0, []
        for token_id, n in zip(ids, frames[: len(ids)]):
            t0, at = at, at + int(n)
            if not self._unspoken(token_id):
                stream.append(
                    (
                        token_id,
                        t0 * self.hop_length / self.sample_rate,
                        at * self.hop_length / self.sample_rate,
                    )
                )
        words = text.split()
        units = []
        for w in words:
            if w not in self._unit_cache:
                self._unit_cache[w] = tuple(
                    i for i in self.net.tokenizer.text_to_ids(w) if not self._unspoken(i)
                )
            units.append(self._unit_cache[w])
        return align_units(words, units, stream)

    def _forward(
        self, ids: list[list[int]], speakers: list[int | None]
    ) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Audio and the frames of every input symbol, per item."""
        torch = self._torch
        lengths = torch.tensor([max(1, len(x)) for x in ids], dtype=torch.long)
        x = torch.zeros(len(ids), int(lengths.max()), dtype=torch.long)
        for i, seq in enumerate(ids):
            x[i, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        aux: dict[str, Any] = {"x_lengths": lengths.to(self.device)}
        if any(s is not None for s in speakers):
            index = torch.tensor([s or 0 for s in speakers], dtype=torch.long, device=self.device)
            if self._dvectors is not None:
                aux["d_vectors"] = self._dvectors[index]
            else:
                aux["speaker_ids"] = index
        with torch.inference_mode():
            # Frames per item are known only after the duration predictor: the decoder's own
            # pre-hook reads them from its input, then every decoder convolution masks by them.
            handle = self.net.waveform_decoder.register_forward_pre_hook(self._capture_lengths)
            try:
                outputs = self.net.inference(x.to(self.device), aux_input=aux)
            finally:
                handle.remove()
                self._valid_frames = None
        y_frames = outputs["y_mask"].sum(dim=(1, 2)).long().cpu()
        wav = outputs["model_outputs"].float().cpu().numpy()[:, 0, :]
        durations = outputs["durations"].float().cpu().numpy()[:, 0, :]  # frames per input symbol
        audio = [wav[i, : int(y_frames[i]) * self.hop_length].astype(np.float32) for i in range(len(ids))]
        return audio, [durations[i] for i in range(len(ids))]

    def _capture_lengths(self, _module: Any, args: tuple[Any, ...]) -> None:
        """The decoder's input is z * y_mask: an item's valid frames end where its columns stop
        being all zero (a masked frame is exactly zero in every channel)."""
        z = args[0]
        nonzero = (z != 0).any(dim=1)  # [B, T]
        idx = self._torch.arange(z.shape[-1], device=z.device)[None, :].expand_as(nonzero)
        self._valid_frames = (idx * nonzero).max(dim=1).values + 1
        self._frames = z.shape[-1]
