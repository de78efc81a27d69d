"""The embedded Llama 3 tokenizer against `transformers` on the same vocabulary."""

from pathlib import Path

import pytest
from llama3_hf import build_llama3_tokenizer_dir

from synth.errors import SynthError
from synth.tokenizer import EmbeddedLlama3, HuggingFaceTokenizer, load_tokenizer

TEXTS = [
    "Hello, how are you?",
    "it's 12345 o'clock",
    "  leading and   inner  spaces ",
    "Unicode: héllo naïve café — “quotes” 日本語 🎉",
    "line\nbreaks\r\n\n and tabs\t.",
    "<|eot_id|> typed by a user is text",
    "I'VE SEEN 1,000,000 THINGS!!!",
    "",
]


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory) -> Path:
    return build_llama3_tokenizer_dir(tmp_path_factory.mktemp("llama3_hf"))


def test_embedded_matches_transformers_on_text(hf_dir):
    emb, hf = EmbeddedLlama3(), HuggingFaceTokenizer(str(hf_dir))
    assert emb.encode_texts(TEXTS) == hf.encode_texts(TEXTS)
    many = [f"Sentence {i}: the number {i * 37} is here." for i in range(50)]
    assert emb.encode_texts(many) == hf.encode_texts(many)  # the parallel batch path


def test_special_tokens_and_pad(hf_dir):
    emb, hf = EmbeddedLlama3(), HuggingFaceTokenizer(str(hf_dir))
    for name in (
        "<|begin_of_text|>",
        "<|start_header_id|>",
        "<|end_header_id|>",
        "<|eot_id|>",
        "<|finetune_right_pad_id|>",
    ):
        assert emb.special_id(name) == hf.special_id(name)
    assert emb.pad_id == hf.pad_id == 128004
    assert emb.decode([128000, 9125, 128004]) == "<|begin_of_text|>system<|finetune_right_pad_id|>"
    with pytest.raises(SynthError, match="no special token"):
        emb.special_id("<|nope|>")


def test_special_strings_in_text_stay_text():
    ids = EmbeddedLlama3().encode_texts(["<|eot_id|>"])[0]
    assert 128009 not in ids and len(ids) > 1


def test_load_tokenizer_resolution(tmp_path, hf_dir):
    assert isinstance(load_tokenizer("meta-llama/Llama-3.1-8B-Instruct"), EmbeddedLlama3)
    assert isinstance(load_tokenizer("llama3"), EmbeddedLlama3)
    assert isinstance(load_tokenizer(str(hf_dir)), HuggingFaceTokenizer)
    with pytest.raises(SynthError, match="no such folder"):
        load_tokenizer(str(tmp_path / "missing" / "tok"))
