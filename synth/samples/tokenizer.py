"""Tokenizers for training samples.

Default: Meta's Llama 3 BPE embedded in `quicktok-v1` (numpy only, offline). Its special-token
table is Llama 3.0's; Llama 3.1 renamed three reserved ids (128004 `<|finetune_right_pad_id|>`,
128008 `<|eom_id|>`, 128010 `<|python_tag|>`), which this wrapper maps so that the 3.1 chat
template and pad token work. Any other Hugging Face tokenizer (a local folder or a hub id) goes
through `transformers`.

Dialog text is always encoded as ordinary text: a turn that says "<|eot_id|>" cannot inject a
special token. Template tokens are looked up by name and inserted as ids."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigError, SynthError

DEFAULT_TOKENIZER = "meta-llama/Llama-3.1-8B-Instruct"
LLAMA31_RENAMED = {"<|finetune_right_pad_id|>": 128004, "<|eom_id|>": 128008, "<|python_tag|>": 128010}
PAD_TOKEN = "<|finetune_right_pad_id|>"


class Tokenizer(Protocol):
    """What the sample builder needs of a tokenizer: special ids, encoding, decoding and the pad
    id."""

    name: str

    def special_id(self, token: str) -> int:
        """Id of a special token by its string; SynthError if the vocabulary lacks it."""
        ...

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        """Encode ordinary text (special-token strings stay text), no BOS added."""
        ...

    def decode(self, ids: Sequence[int]) -> str: ...

    @property
    def pad_id(self) -> int: ...


@dataclass
class EmbeddedLlama3:
    """quicktok's exact Llama 3 BPE (ids equal to the Hugging Face tokenizer's)."""

    name: str = DEFAULT_TOKENIZER
    _enc: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        import quicktok

        self._enc = quicktok.get_encoding("llama3")

    @property
    def pad_id(self) -> int:
        return LLAMA31_RENAMED[PAD_TOKEN]

    def special_id(self, token: str) -> int:
        if token in LLAMA31_RENAMED:
            return LLAMA31_RENAMED[token]
        if token not in self._enc.special_tokens_set:
            raise SynthError(f"{self.name}: no special token {token!r}")
        return int(self._enc.encode_single_token(token))

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        if len(texts) < 8:
            return [self._enc.encode_ordinary(t) for t in texts]
        tokens, offsets = self._enc.encode_batch(list(texts), 0, False)
        flat = tokens.tolist()
        return [flat[offsets[i] : offsets[i + 1]] for i in range(len(texts))]

    def decode(self, ids: Sequence[int]) -> str:
        names = {v: k for k, v in LLAMA31_RENAMED.items()}
        out: list[str] = []
        run: list[int] = []
        for i in ids:
            if int(i) in names:
                out += [self._enc.decode(run), names[int(i)]]
                run = []
            else:
                run.append(int(i))
        out.append(self._enc.decode(run))
        return "".join(out)


@dataclass
class HuggingFaceTokenizer:
    """Any tokenizer `transformers.AutoTokenizer` loads (local folder or hub id)."""

    name: str
    _tok: Any = field(init=False, repr=False)

    def __post_init__(self) -> None:
        try:
            from transformers import AutoTokenizer
        except ImportError as exc:
            raise SynthError("this tokenizer needs `transformers`: pip install transformers") from exc
        path = Path(self.name)
        looks_local = path.exists() or self.name.startswith((".", "/", "~")) or self.name.count("/") > 1
        if looks_local and not path.is_dir():
            raise ConfigError("tokenizer", "no such folder with tokenizer files", self.name)
        try:
            self._tok = AutoTokenizer.from_pretrained(self.name)
        except Exception as exc:  # OSError, ValueError, hub errors: report the name and cause
            raise ConfigError("tokenizer", f"cannot load ({exc})", self.name) from exc

    @property
    def pad_id(self) -> int:
        tok = self._tok
        tid = tok.convert_tokens_to_ids(PAD_TOKEN)
        if isinstance(tid, int) and tid != tok.unk_token_id and tid is not None:
            return tid
        if tok.pad_token_id is not None:
            return int(tok.pad_token_id)
        return int(tok.eos_token_id)

    def special_id(self, token: str) -> int:
        tid = self._tok.convert_tokens_to_ids(token)
        if tid is None or (self._tok.unk_token_id is not None and tid == self._tok.unk_token_id):
            raise SynthError(f"tokenizer {self.name}: no special token {token!r}")
        return int(tid)

    def encode_texts(self, texts: Sequence[str]) -> list[list[int]]:
        out = self._tok(list(texts), add_special_tokens=False, split_special_tokens=True)
        return [list(x) for x in out["input_ids"]]

    def decode(self, ids: Sequence[int]) -> str:
        return self._tok.decode(list(ids), skip_special_tokens=False)


def export_llama3_hf(folder: Path | str) -> Path:
    """Write the embedded Llama 3 tokenizer as a Hugging Face tokenizer folder (tokenizer.json and
    config), built by transformers' own tiktoken converter from quicktok's BPE ranks, with the
    Llama 3.1 special-token names. Offline; loads with `AutoTokenizer.from_pretrained(folder)` in
    today's transformers and in 4.4x (tokenizers 0.19), and adds <|begin_of_text|> in front of an
    encoded text as Meta's Llama 3 tokenizer does (`add_special_tokens=False` leaves it out)."""
    import quicktok
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    enc = quicktok.get_encoding("llama3")
    n_ordinary = len(enc.token_byte_values())
    ranks = {enc.decode_single_token_bytes(i): i for i in range(n_ordinary)}

    class FromRanks(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_url: str) -> dict[bytes, int]:
            return ranks

    renamed = {v: k for k, v in LLAMA31_RENAMED.items()}
    specials = [renamed.get(i) or enc.decode([i]) for i in range(n_ordinary, enc.max_token_value + 1)]
    backend = FromRanks(vocab_file="quicktok:llama3", extra_special_tokens=specials).converted()
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<|begin_of_text|>", eos_token="<|eot_id|>", pad_token=PAD_TOKEN
    )
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    _as_meta_llama3(folder / "tokenizer.json")
    config_path = folder / "tokenizer_config.json"
    config = json.loads(config_path.read_text(encoding="utf-8"))
    config["tokenizer_class"] = "PreTrainedTokenizerFast"  # what Meta's config says; 4.4x knows no other
    config_path.write_text(json.dumps(config, ensure_ascii=False, indent=2), encoding="utf-8")
    return folder


def _as_meta_llama3(path: Path) -> None:
    """Make tokenizer.json read like Meta's Llama 3 file, for old and new libraries alike: merges
    as "a b" strings (tokenizers 0.19 / transformers 4.4x read no other form; byte-level tokens
    hold no spaces), and a post-processor that puts <|begin_of_text|> in front of every encoded
    text, as Meta's tokenizer does."""
    data = json.loads(path.read_text(encoding="utf-8"))
    model = data["model"]
    model["merges"] = [m if isinstance(m, str) else " ".join(m) for m in model["merges"]]
    bos = "<|begin_of_text|>"
    bos_id = next(t["id"] for t in data["added_tokens"] if t["content"] == bos)
    data["post_processor"] = {
        "type": "Sequence",
        "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {
                "type": "TemplateProcessing",
                "single": [
                    {"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                ],
                "pair": [
                    {"SpecialToken": {"id": bos, "type_id": 0}},
                    {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": bos, "type_id": 1}},
                    {"Sequence": {"id": "B", "type_id": 1}},
                ],
                "special_tokens": {bos: {"id": bos, "ids": [bos_id], "tokens": [bos]}},
            },
        ],
    }
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2), encoding="utf-8")


_EMBEDDED_NAMES = re.compile(r"^(meta-llama/)?(meta-)?llama-?3(\.[0-3])?(-\d+b)?(-instruct)?$", re.IGNORECASE)


def load_tokenizer(spec: str = DEFAULT_TOKENIZER) -> Tokenizer:
    """A Llama 3 name ('llama3', 'meta-llama/Llama-3.1-8B-Instruct', ...) gives the embedded
    tokenizer, with no download; an existing folder or any other hub id goes to transformers."""
    if not Path(spec).exists() and _EMBEDDED_NAMES.match(spec):
        return EmbeddedLlama3(name=spec)
    return HuggingFaceTokenizer(spec)
