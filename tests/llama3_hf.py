"""Builds a Hugging Face tokenizer folder for Llama 3 from the BPE ranks that quicktok ships, with
transformers' own tiktoken converter, so that the tests compare against `transformers` on the
same vocabulary without committing third-party vocabulary files."""

from __future__ import annotations

from pathlib import Path


def build_llama3_tokenizer_dir(folder: Path) -> Path:
    import quicktok
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import TikTokenConverter

    from synth.tokenizer import LLAMA31_RENAMED

    enc = quicktok.get_encoding("llama3")
    ranks = {enc.decode_single_token_bytes(i): i for i in range(len(enc.token_byte_values()))}

    class FromRanks(TikTokenConverter):
        @staticmethod
        def load_tiktoken_bpe(_url: str) -> dict[bytes, int]:
            return ranks

    renamed = {v: k for k, v in LLAMA31_RENAMED.items()}
    specials = [renamed.get(i) or enc.decode([i]) for i in range(len(ranks), enc.max_token_value + 1)]
    backend = FromRanks(vocab_file="(quicktok llama3)", extra_special_tokens=specials).converted()
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                  eos_token="<|eot_id|>", pad_token="<|finetune_right_pad_id|>")
    folder.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(str(folder))
    return folder
