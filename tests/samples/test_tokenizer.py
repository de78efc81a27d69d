"""The embedded Llama 3 tokenizer against `transformers` on the same vocabulary."""

import json
from pathlib import Path

import pytest

from synth.errors import SynthError
from synth.samples.tokenizer import EmbeddedLlama3, HuggingFaceTokenizer, load_tokenizer
from synth.samples.tokenizer import export_llama3_hf as build_llama3_tokenizer_dir

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


@pytest.mark.slow
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


OLD_LIBS_SCRIPT = """
import sys
import transformers, tokenizers
from transformers import AutoTokenizer
tok = AutoTokenizer.from_pretrained(sys.argv[1])
texts = ["Hello world", "It's 3:45 pm -- don't be late!", "Ünïcödé and emoji 🎉 too."]
print(transformers.__version__, tokenizers.__version__)
for t in texts:
    print(tok(t)["input_ids"])
    print(tok(t, add_special_tokens=False)["input_ids"])
"""


@pytest.mark.slow
def test_exported_folder_loads_in_transformers_4_4x_and_adds_bos_like_meta(hf_dir, tmp_path):
    """The folder is read by transformers 4.44 / tokenizers 0.19 (a fresh venv from the package
    registry) with the same ids as the embedded tokenizer, and <|begin_of_text|> comes first when
    special tokens are added, as with Meta's Llama 3 tokenizer."""
    import subprocess
    import venv

    from transformers import AutoTokenizer

    texts = ["Hello world", "It's 3:45 pm -- don't be late!", "Ünïcödé and emoji 🎉 too."]
    plain = EmbeddedLlama3().encode_texts(texts)
    now = AutoTokenizer.from_pretrained(str(hf_dir))
    assert [now(t)["input_ids"] for t in texts] == [[128000, *ids] for ids in plain]
    env = tmp_path / "old"
    venv.EnvBuilder(with_pip=True).create(env)
    python = env / "bin" / "python"
    res = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "transformers==4.44.2", "tokenizers==0.19.1"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    res = subprocess.run(
        [python, "-c", OLD_LIBS_SCRIPT, str(hf_dir)], capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr[-3000:]
    lines = res.stdout.splitlines()
    assert lines[0].startswith("4.44.2 0.19.1")
    got = [json.loads(x) for x in lines[1:]]
    assert got[0::2] == [[128000, *ids] for ids in plain] and got[1::2] == plain
