"""Coqui TTS (the maintained `coqui-tts` fork) multi-speaker VITS, batched on the GPU or CPU.

A model is a name (`tts_models/en/vctk/vits`: coqui's model manager downloads it into the model
cache on machines that reach the hub, or finds it there) or a local folder with `config.json`, a
checkpoint (`model_file.pth`, `best_model.pth`, `model.pth`, `checkpoint*.pth`) and a speakers file
(`speaker_ids.json` / `speakers.json` / `speakers.pth`; a d-vector file for d-vector models),
loaded by synth.engines.coqui_model. Every speaker becomes a voice; gender and accent come from a
VCTK-style `speaker-info.txt` (found beside the model, or given), matched by speaker NAME: a
model's speaker indices follow its training order, not the corpus table's.

Batched synthesis: one forward pass for many turns of any speakers. Turns are sorted by length
(similar lengths share a pass), padded, run with `x_lengths` and `speaker_ids`, and each output is
cut to its own length from the duration mask (`y_mask` frames x hop length). The HiFi-GAN decoder
has no masks of its own, so every decoder convolution on the time axis (not the speaker
conditioning) gets a pre-hook that zeroes the frames past each item's length, exactly what that
convolution sees when the item runs alone: with noise off, a turn synthesized in a batch equals the
turn synthesized alone (float tolerance), same length."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..errors import ConfigError
from ..ids import slug
from ..words import Words, align_units
from .base import EngineAudio, SynthesisRequest, speaker_distance
from .blends import Blend, blended_voice, read_blends
from .config import CoquiConfig
from .coqui_model import SPEAKER_INFO_FILES, LoadedVits, find_file, load_vits
from .speakers import read_speaker_info, speaker_key


class DecoderMasks:
    """Per-item lengths for the HiFi-GAN decoder during a batched pass: a pre-hook on the decoder
    reads each item's valid frames from its input (`capture`), and every time-axis convolution
    zeroes the frames past them (`install`), so an item in a batch sees what it sees alone."""

    def __init__(self, torch: Any):
        self._torch = torch
        self.valid: Any = None  # per-item decoder input frames during a batched pass
        self.frames = 0

    def install(self, decoder: Any) -> None:
        torch = self._torch

        def mask(_module: Any, args: tuple[Any, ...]) -> tuple[Any, ...] | None:
            valid = self.valid
            if valid is None:
                return None
            x = args[0]
            if x.shape[-1] < self.frames:  # not on the decoder's time axis
                return None
            factor = x.shape[-1] // self.frames
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

    def capture(self, _module: Any, args: tuple[Any, ...]) -> None:
        """The decoder's input is z * y_mask: an item's valid frames end where its columns stop
        being all zero (a masked frame is exactly zero in every channel)."""
        z = args[0]
        nonzero = (z != 0).any(dim=1)  # [B, T]
        idx = self._torch.arange(z.shape[-1], device=z.device)[None, :].expand_as(nonzero)
        self.valid = (idx * nonzero).max(dim=1).values + 1
        self.frames = z.shape[-1]


def catalog_voices(vits: LoadedVits, speaker_meta: dict[str, dict[str, str]]) -> list[Voice]:
    """Every speaker of the model as a voice, in speaker-index order, with its metadata by name."""
    net = vits.net
    manager = net.speaker_manager
    count = int(getattr(net.args, "num_speakers", 0) or 0)
    if manager is not None and manager.name_to_id:
        names: dict[str, int | None] = dict(manager.name_to_id)
    elif count:
        names = {f"speaker{i}": i for i in range(count)}  # no speakers file: rows by index
    else:
        names = {"default": None}
    prefix = slug(vits.name.split("/")[-2] if "/" in vits.name else vits.name)
    voices = []
    for name, idx in sorted(names.items(), key=lambda kv: (kv[1] is None, kv[1])):
        meta = dict(speaker_meta.get(speaker_key(name), {}))
        voices.append(
            Voice(
                id=f"{prefix}-{name}",
                engine=CoquiEngine.name,
                model=vits.name,
                speaker=name,
                params={"speaker_index": idx},
                meta={"base_speaker": name, **meta},
            )
        )
    return voices


def add_blends(vits: LoadedVits, voices: list[Voice], recipes: list[Blend], source: str) -> list[Voice]:
    """New voices mixed from the speakers' embeddings: each recipe's weighted sum of its
    parents' rows becomes a new row of the speaker table (or of the d-vectors), so a blended
    voice is one more speaker index and batches like any other. Grows `vits` in place."""
    import torch

    by_speaker = {v.speaker: v for v in voices}
    table = vits.dvectors if vits.dvectors is not None else getattr(vits.net, "emb_g", None)
    if table is None:
        raise ConfigError("blends", "this model has no speaker embeddings to blend", source)
    rows = table if isinstance(table, torch.Tensor) else table.weight.data
    new_rows: list[Any] = []
    blended: list[Voice] = []
    for recipe in recipes:
        unknown = [p for p, _ in recipe.parents if p not in by_speaker]
        if unknown:
            raise ConfigError("blends", f"{recipe.id}: no speaker {unknown[0]!r} in {vits.name}")
        mix: Any = sum(
            w * rows[int(by_speaker[p].params["speaker_index"])].float() for p, w in recipe.parents
        )
        new_rows.append(mix.to(rows.dtype))
        index = rows.shape[0] + len(blended)
        blended.append(blended_voice(recipe, CoquiEngine.name, vits.name, {"speaker_index": index}))
    grown = torch.cat([rows, torch.stack(new_rows)])
    if vits.dvectors is not None:
        vits.dvectors = grown
    else:
        vits.net.emb_g = torch.nn.Embedding.from_pretrained(grown, freeze=True)
    return blended


class CoquiEngine:
    """Speaks with a loaded VITS model (synth.engines.coqui_model), many turns per forward pass."""

    name = "coqui"

    def __init__(self, vits: LoadedVits, settings: CoquiConfig, max_batch: int = 64):
        import torch

        self._torch = torch
        self.settings = settings
        self.vits = vits
        self.net = vits.net
        self.model = vits.name
        self.device, self.half = vits.device, vits.half
        self.sample_rate, self.hop_length = vits.sample_rate, vits.hop_length
        self.max_batch = max_batch
        self._lock = threading.Lock()
        self._masks = DecoderMasks(torch)
        self._masks.install(self.net.waveform_decoder)
        self._unit_cache: dict[str, tuple[int, ...]] = {}  # word -> its spoken symbols said alone
        info_path = Path(settings.speaker_info) if settings.speaker_info else None
        info_path = info_path or find_file(vits.folder, SPEAKER_INFO_FILES)
        self._voices = catalog_voices(vits, read_speaker_info(info_path) if info_path else {})
        if settings.blends:
            recipes = read_blends(Path(settings.blends))
            self._voices += add_blends(vits, self._voices, recipes, settings.blends)

    @classmethod
    def load(cls, config: CoquiConfig, max_batch: int = 64) -> CoquiEngine:
        """The model of `config` loaded (synth.engines.coqui_model.load_vits), ready to speak."""
        return cls(load_vits(config), config, max_batch)

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
            if self.vits.dvectors is not None:
                aux["d_vectors"] = self.vits.dvectors[index]
            else:
                aux["speaker_ids"] = index
        with torch.inference_mode():
            # Frames per item are known only after the duration predictor: the decoder's own
            # pre-hook reads them from its input, then every decoder convolution masks by them.
            handle = self.net.waveform_decoder.register_forward_pre_hook(self._masks.capture)
            try:
                outputs = self.net.inference(x.to(self.device), aux_input=aux)
            finally:
                handle.remove()
                self._masks.valid = None
        y_frames = outputs["y_mask"].sum(dim=(1, 2)).long().cpu()
        wav = outputs["model_outputs"].float().cpu().numpy()[:, 0, :]
        durations = outputs["durations"].float().cpu().numpy()[:, 0, :]  # frames per input symbol
        audio = [wav[i, : int(y_frames[i]) * self.hop_length].astype(np.float32) for i in range(len(ids))]
        return audio, [durations[i] for i in range(len(ids))]
