"""Build a multi-speaker VITS model folder with random weights (config.json, model_file.pth,
speaker_ids.json, speaker-info.txt), the layout the coqui engine loads. For tests, benchmarks and
deployment smoke checks on machines without the model hub: `tiny` is a few MB and fast on a CPU;
`vctk` has the full-size architecture of coqui's VCTK VITS (speed measurements only)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

from .errors import ConfigError


def build_random_vits(
    folder: Path | str,
    speakers: Sequence[str],
    size: str = "tiny",
    speaker_info: Mapping[str, Mapping[str, str]] | None = None,
    seed: int = 0,
    speaker_order: Sequence[str] | None = None,
) -> Path:
    """`speaker_order` sets the model's speaker indices (default: `speakers` order), so tests can
    make index order differ from the metadata table's order."""
    import torch
    from TTS.tts.configs.vits_config import VitsConfig
    from TTS.tts.models.vits import Vits

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    order = list(speaker_order or speakers)
    (folder / "speaker_ids.json").write_text(json.dumps({name: i for i, name in enumerate(order)}, indent=1))
    config = VitsConfig()
    config.use_phonemes = False  # characters: no espeak-ng binary needed
    config.text_cleaner = "basic_cleaners"
    args = config.model_args
    args.use_speaker_embedding = True
    args.num_speakers = len(order)
    args.speakers_file = str(folder / "speaker_ids.json")
    args.init_discriminator = False
    if size == "tiny":
        config.audio.fft_size = config.audio.win_length = 256
        config.audio.hop_length = 64
        config.audio.sample_rate = 16000
        args.out_channels = 129
        args.hidden_channels = 32
        args.hidden_channels_ffn_text_encoder = 64
        args.num_heads_text_encoder = 2
        args.num_layers_text_encoder = 2
        args.num_layers_flow = 2
        args.num_layers_posterior_encoder = 2
        args.speaker_embedding_channels = 16
        args.upsample_initial_channel_decoder = 32
        args.upsample_rates_decoder = [4, 4, 4]
        args.upsample_kernel_sizes_decoder = [8, 8, 8]
        args.resblock_kernel_sizes_decoder = [3]
        args.resblock_dilation_sizes_decoder = [[1, 3, 5]]
    elif size != "vctk":
        raise ConfigError("size", "choose tiny or vctk", size)
    torch.manual_seed(seed)
    model = Vits(config)
    config.save_json(str(folder / "config.json"))
    torch.save({"model": model.state_dict()}, folder / "model_file.pth")
    if speaker_info:
        rows = ["ID  AGE  GENDER  ACCENTS  REGION"]
        rows += [
            f"{name}  {m.get('age', '')}  {m.get('gender', '')}  {m.get('accent', '')}  {m.get('region', '')}"
            for name, m in speaker_info.items()
        ]
        (folder / "speaker-info.txt").write_text("\n".join(rows) + "\n")
    return folder
