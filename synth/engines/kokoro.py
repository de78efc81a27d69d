"""Kokoro-82M (StyleTTS 2 with an iSTFTNet decoder, exported to ONNX): 24 kHz, 54 voices, each a
style pack (float32 [510, 1, 256]: one 256-dim style vector per input length; a sentence of n
tokens is spoken with row n).

Text goes to tokens through kokoro-js's English front end (synth.engines.kokoro_text: espeak-ng
through piper-tts's bridge, Kokoro's vocabulary). A text longer than the model's 510 tokens is cut
at clause boundaries and its pieces joined. Word timings come from the model's own durations: the
graph's per-token frame counts (`/encoder/Clip_output_0`, frames of 600 samples) are added as an
output in memory, the kind of patch piper-tts makes for its alignments, and the phonemes they time
are matched to the transcript's words as the Piper engine matches its alignments.

Voices: the id's first letter is the language/accent (a: American English, b: British English; e
Spanish, f French, h Hindi, i Italian, j Japanese, p Brazilian Portuguese, z Mandarin), the second
the gender. Mixes (a blends file) are weighted sums of two or three voices' packs.

Batching: none. The graph's batch dimension is fixed at 1 and its length regulator expands one
sequence (measured: a batch of 2 fails in /encoder/predictor/text_encoder/Expand), so requests run
one after another (onnxruntime uses every core within each)."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..domain import Voice
from ..errors import ConfigError, SynthError
from ..words import Words, align_units
from . import kokoro_text
from .base import EngineAudio, SynthesisRequest
from .blends import Blend, blended_voice, read_blends
from .config import KokoroConfig
from .kokoro_model import (
    MANIFEST,
    MODEL_FILE,
    MODEL_NAME,
    STYLE_DIM,
    STYLE_ROWS,
    VOICES_DIR,
    fetch_model,
    is_model_name,
)
from .onnx_session import session_options

SAMPLE_RATE = 24000
DURATION_TENSOR = "/encoder/Clip_output_0"  # kokoro-onnx's export: per-token frames (600 samples)
# Which letter means what (kokoro-js voices.js, hexgrad/kokoro pipeline.py LANG_CODES).
LANGUAGES = {
    "a": ("en-us", "us"),
    "b": ("en-gb", "uk"),
    "e": ("es", "es"),
    "f": ("fr-fr", "fr"),
    "h": ("hi", "in"),
    "i": ("it", "it"),
    "j": ("ja", "jp"),
    "p": ("pt-br", "br"),
    "z": ("zh", "cn"),
}
GENDERS = {"f": "female", "m": "male"}
# kokoro-js voices.js's overall grades (hexgrad's judgement of each voice's quality).
GRADES = {
    "af_heart": "A", "af_alloy": "C", "af_aoede": "C+", "af_bella": "A-", "af_jessica": "D",
    "af_kore": "C+", "af_nicole": "B-", "af_nova": "C", "af_river": "D", "af_sarah": "C+",
    "af_sky": "C-", "am_adam": "F+", "am_echo": "D", "am_eric": "D", "am_fenrir": "C+",
    "am_liam": "D", "am_michael": "C+", "am_onyx": "D", "am_puck": "C+", "am_santa": "D-",
    "bf_emma": "B-", "bf_isabella": "C", "bm_george": "C", "bm_lewis": "D+", "bf_alice": "D",
    "bf_lily": "D", "bm_daniel": "D", "bm_fable": "C", "jf_alpha": "C+", "jf_gongitsune": "C",
    "jf_nezumi": "C-", "jf_tebukuro": "C", "jm_kumo": "C-", "zf_xiaobei": "D", "zf_xiaoni": "D",
    "zf_xiaoxiao": "D", "zf_xiaoyi": "D", "zm_yunjian": "D", "zm_yunxi": "D", "zm_yunxia": "D",
    "zm_yunyang": "D", "ef_dora": "D", "em_alex": "D", "em_santa": "D", "ff_siwis": "B-",
    "hf_alpha": "C", "hf_beta": "C", "hm_omega": "C", "hm_psi": "C", "if_sara": "C",
    "im_nicola": "C", "pf_dora": "D", "pm_alex": "D", "pm_santa": "D",
}  # fmt: skip


def voice_attributes(voice_id: str) -> dict[str, str]:
    """language, accent and gender from a Kokoro voice id ('bm_george': British English, male)."""
    if len(voice_id) < 4 or voice_id[2] != "_" or voice_id[0] not in LANGUAGES or voice_id[1] not in GENDERS:
        raise ConfigError("voice", "a Kokoro voice id is <language><gender>_<name>, like af_heart", voice_id)
    language, accent = LANGUAGES[voice_id[0]]
    return {"language": language, "accent": accent, "gender": GENDERS[voice_id[1]]}


@dataclass(frozen=True)
class _Files:
    model: Path
    voices: Path
    manifest: dict[str, Any]


def resolve(config: KokoroConfig) -> _Files:
    """The model file and voice folder a config names: a name from the model cache (fetched once
    from the hub's layout), a folder with model.onnx and voices/, or a .onnx with voices/ beside."""
    name = config.model or MODEL_NAME
    path = Path(name).expanduser()
    if is_model_name(name) and not path.exists():
        path = fetch_model(name, Path(config.model_cache).expanduser() if config.model_cache else None)
    folder, model = (path, path / MODEL_FILE) if path.is_dir() else (path.parent, path)
    if not model.is_file():
        raise SynthError(f"Kokoro model {model} does not exist")
    voices = folder / VOICES_DIR
    if not voices.is_dir():
        raise SynthError(f"Kokoro voice packs not found: {voices} (voices/<id>.bin beside the model)")
    manifest_path = folder / MANIFEST
    manifest = json.loads(manifest_path.read_text()) if manifest_path.is_file() else {}
    return _Files(model, voices, manifest)


def read_pack(path: Path) -> np.ndarray:
    """One voice pack: float32 [510, 256] (stored as [510, 1, 256])."""
    data = np.fromfile(path, dtype="<f4")
    if data.size != STYLE_ROWS * STYLE_DIM or not np.isfinite(data).all():
        raise SynthError(f"{path} is not a Kokoro voice pack (float32 [{STYLE_ROWS}, 1, {STYLE_DIM}])")
    return data.reshape(STYLE_ROWS, STYLE_DIM)


def _has_cuda() -> bool:
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def _duration_output(graph: Any) -> str | None:
    """The graph's per-token durations: an output of its own named for them, else kokoro-onnx's
    duration tensor."""
    for out in graph.output:
        if "dur" in out.name.lower():
            return str(out.name)
    produced = {o for node in graph.node for o in node.output}
    return DURATION_TENSOR if DURATION_TENSOR in produced else None


def load_session(proto: Any, providers: list[str], word_timings: bool) -> tuple[Any, str | None]:
    """An onnxruntime session of the model (an onnx ModelProto), with its duration tensor as a
    second output when word timings are asked for (None when the graph has none)."""
    import onnx
    import onnxruntime

    durations = _duration_output(proto.graph) if word_timings else None
    if durations is None or durations in {o.name for o in proto.graph.output}:
        return onnxruntime.InferenceSession(
            proto.SerializeToString(), sess_options=session_options(), providers=providers
        ), durations
    # the tensor's type is not recorded in the graph; kokoro-onnx's export computes it in float
    for elem in (onnx.TensorProto.FLOAT, onnx.TensorProto.INT64):
        patched = onnx.ModelProto()
        patched.CopyFrom(proto)
        patched.graph.output.append(onnx.helper.make_tensor_value_info(durations, elem, None))
        try:
            return onnxruntime.InferenceSession(
                patched.SerializeToString(), sess_options=session_options(), providers=providers
            ), durations
        except Exception:  # onnxruntime reports a type mismatch as its own exception types
            continue
    return onnxruntime.InferenceSession(
        proto.SerializeToString(), sess_options=session_options(), providers=providers
    ), None


class KokoroEngine:
    """Loads the Kokoro model and its voice packs once; synthesizes any of its voices or mixes."""

    name = "kokoro"

    def __init__(self, config: KokoroConfig = KokoroConfig()):
        self.config = config
        files = resolve(config)
        self.model_path = files.model
        name = config.model or MODEL_NAME
        self.model = name if is_model_name(name) else _short_name(files.model)
        self._sha256 = files.manifest.get("sha256", {}).get(MODEL_FILE)
        self.use_cuda = config.device == "cuda" or (config.device == "auto" and _has_cuda())
        providers = (
            ["CUDAExecutionProvider", "CPUExecutionProvider"] if self.use_cuda else ["CPUExecutionProvider"]
        )
        import onnx

        try:
            proto = onnx.load(str(files.model))
            self._session, self._durations = load_session(proto, providers, config.word_timings)
        except Exception as exc:  # onnx and onnxruntime raise their own exception types
            raise SynthError(f"cannot load Kokoro model {files.model}: {exc}") from exc
        self.deterministic_graph = not any(
            node.op_type.startswith("Random") or node.op_type in ("Multinomial", "Bernoulli", "Dropout")
            for node in proto.graph.node
        )
        del proto
        inputs = {i.name: i for i in self._session.get_inputs()}
        self._tokens_input = "input_ids" if "input_ids" in inputs else "tokens"
        speed_type = inputs["speed"].type if "speed" in inputs else "tensor(float)"
        self._speed_dtype = np.int32 if "int32" in speed_type else np.float32
        self._audio_output = self._session.get_outputs()[0].name
        self._packs: dict[str, np.ndarray] = {}
        ids = sorted(p.stem for p in files.voices.glob("*.bin"))
        wanted = [v for v in ids if config.voices == "all" or v[:1] in ("a", "b")]
        if not wanted:
            raise SynthError(f"no Kokoro voice packs in {files.voices}")
        self._voices = [self._voice_of(v, read_pack(files.voices / f"{v}.bin")) for v in wanted]
        self._all_packs = {v: files.voices / f"{v}.bin" for v in ids}
        if config.blends:
            self._voices += self._add_mixes(read_blends(Path(config.blends)))
        self._word_cache: dict[tuple[str, str], tuple[str, ...]] = {}

    def _voice_of(self, vid: str, pack: np.ndarray) -> Voice:
        attrs = voice_attributes(vid)
        self._packs[vid] = pack
        return Voice(
            id=vid,
            engine=self.name,
            model=self.model,
            speaker=vid,
            params={"speed": self.config.speed},
            meta={"base_speaker": vid, **attrs, "grade": GRADES.get(vid, "")},
        )

    def _add_mixes(self, recipes: list[Blend]) -> list[Voice]:
        """Mixed voices: each pack the recipe's weighted sum of its parents' packs (any of the
        model's voices, also those not in the catalog)."""
        out = []
        for recipe in recipes:
            packs = []
            for parent, weight in recipe.parents:
                path = self._all_packs.get(parent)
                if path is None:
                    raise ConfigError("blends", f"{recipe.id}: no Kokoro voice {parent!r}")
                packs.append(weight * self._packs.get(parent, read_pack(path)))
            attrs = [voice_attributes(p) for p, _ in recipe.parents]
            main = max(recipe.parents, key=lambda pw: pw[1])[0]
            meta = {
                key: attrs[0][key] if all(a[key] == attrs[0][key] for a in attrs) else "mixed"
                for key in ("language", "accent", "gender")
            }
            self._packs[recipe.id] = np.sum(packs, axis=0).astype(np.float32)
            params = {"speed": self.config.speed}
            out.append(blended_voice(recipe, self.name, self.model, params, {**meta, "phonemes": main[0]}))
        return out

    @property
    def native_rate(self) -> int:
        return SAMPLE_RATE

    def voices(self) -> list[Voice]:
        return list(self._voices)

    @property
    def deterministic(self) -> bool:
        """Whether the graph samples anything: checked at load (no Random* operator in it, true of
        kokoro-onnx's export), then a text and voice always give the same audio on one machine
        and provider, so a second synthesis cannot fix a turn the ASR check rejects."""
        return self.deterministic_graph

    def voice_distance(self, a: Voice, b: Voice) -> float:
        """How different two voices sound by their recipes: 1 - the weight they share (two of
        Kokoro's voices, different people, are 1.0 apart; a mix with 0.6 of a voice is 0.4 from
        it). Measured casting (the speaker encoder) is the finer judge."""
        wa, wb = _recipe(a), _recipe(b)
        if a.model != b.model:
            return 1.0
        shared = sum(min(w, wb.get(p, 0.0)) for p, w in wa.items())
        speed = abs(math.log(float(a.params.get("speed", 1.0)) / float(b.params.get("speed", 1.0))))
        return min(1.0, max(0.0, 1.0 - shared) + 0.25 * speed)

    def describe(self) -> dict[str, object]:
        return {
            "engine": self.name,
            "model": self.model,
            "model_path": str(self.model_path),
            "model_sha256": self._sha256,
            "native_sample_rate": SAMPLE_RATE,
            "voices": self.config.voices,
            "speed": self.config.speed,
            "word_timings": self._durations,
            "batch": 1,  # the graph's batch dimension is fixed at 1 (see the module's docstring)
            "device": "cuda" if self.use_cuda else "cpu",
        }

    def synthesize(self, requests: Sequence[SynthesisRequest]) -> list[EngineAudio]:
        return [self._one(req) for req in requests]

    def _language(self, voice: Voice) -> str:
        """The front end's accent: British for b* voices (and mixes led by one), else American."""
        first = str(voice.meta.get("phonemes", voice.id))[:1]
        return first if first in kokoro_text.ESPEAK_VOICES else "a"

    def _one(self, req: SynthesisRequest) -> EngineAudio:
        pack = self._packs.get(req.voice.id)
        if pack is None:
            raise ConfigError("voice", "not a voice of this Kokoro model", req.voice.id)
        language = self._language(req.voice)
        speed = float(req.voice.params.get("speed", self.config.speed))
        audio_parts: list[np.ndarray] = []
        stream: list[tuple[str, float, float]] = []
        at = 0
        for piece in kokoro_text.chunks(kokoro_text.phonemize(req.text, language)):
            ids = kokoro_text.tokens(piece)
            feeds = {
                self._tokens_input: np.array([[0, *ids, 0]], dtype=np.int64),
                "style": pack[min(len(ids), STYLE_ROWS - 1)][None, :],
                "speed": np.array([speed], dtype=self._speed_dtype),
            }
            names = [self._audio_output] + ([self._durations] if self._durations else [])
            outputs = self._session.run(names, feeds)
            audio = np.asarray(outputs[0], dtype=np.float32).ravel()
            if self._durations:
                frames = np.asarray(outputs[1], dtype=np.float64).ravel()
                hop = audio.size / max(float(frames.sum()), 1.0)  # 600 samples a frame here
                edges = (np.concatenate([[0.0], np.cumsum(frames)]) * hop).tolist()
                for k, symbol in enumerate(piece, start=1):  # token k; 0 is the leading pad
                    if symbol not in kokoro_text.NOT_SPOKEN and k + 1 < len(edges):
                        stream.append(
                            (symbol, (at + edges[k]) / SAMPLE_RATE, (at + edges[k + 1]) / SAMPLE_RATE)
                        )
            audio_parts.append(audio)
            at += audio.size
        samples = np.concatenate(audio_parts) if audio_parts else np.zeros(0, dtype=np.float32)
        words = self._words(req.text, stream, language) if self._durations else None
        return EngineAudio(samples=samples, sample_rate=SAMPLE_RATE, words=words)

    def _words(self, text: str, stream: list[tuple[str, float, float]], language: str) -> Words:
        words = text.split()
        return align_units(words, [self._word_phonemes(w, language) for w in words], stream)

    def _word_phonemes(self, word: str, language: str) -> tuple[str, ...]:
        """A word's phonemes said alone (cached: a dataset repeats its words)."""
        key = (word, language)
        cached = self._word_cache.get(key)
        if cached is None:
            cached = tuple(
                c for c in kokoro_text.phonemize(word, language) if c not in kokoro_text.NOT_SPOKEN
            )
            if len(self._word_cache) < 100_000:
                self._word_cache[key] = cached
        return cached


def _recipe(voice: Voice) -> dict[str, float]:
    blend = voice.meta.get("blend")
    if blend:
        return {str(p): float(w) for p, w in blend}
    return {voice.speaker: 1.0}


def _short_name(model: Path) -> str:
    """A model given by path: its folder's name for folder/model.onnx, else the file's stem."""
    return model.parent.name if model.name == MODEL_FILE else model.stem
