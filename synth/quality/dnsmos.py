"""Perceived quality: DNSMOS P.835 (speech signal SIG, background BAK, overall OVRL) and P.808
MOS, Microsoft's non-intrusive predictors, with the ONNX models the PyPI package `speechmos`
(MIT) ships in its wheel, run on CPU with onnxruntime. Scores are on a 1-5 scale; a clean TTS
turn is about 3 OVRL here, noise pulls BAK and OVRL down.

The numbers are speechmos's own: its `DNSMOS` class over the wheel's models, called as
`speechmos.dnsmos.run` calls it (a turn shorter than 9.01 s is repeated up to that length, a
longer one scored in 9 s windows a second apart and averaged), so an independent run of
speechmos gives the same figures."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..engines.onnx_session import CPU, session_options
from ..errors import NotAvailable
from .base import Score, TurnAudio

VERSION = "1"


def _package() -> Any:
    try:
        from speechmos import dnsmos
    except ImportError:
        raise NotAvailable(
            "dnsmos", "the dnsmos scorer needs speechmos: pip install 'synth[quality]'"
        ) from None
    return dnsmos


def speechmos_version() -> str:
    """The installed speechmos's version (part of the scorer's version: its models may change)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("speechmos")
    except PackageNotFoundError:
        return "unknown"


def _dnsmos(dnsmos: Any, primary: str, p808: str) -> Any:
    """speechmos's DNSMOS over its models, with its two sessions made with this process's
    intra-op threads (synth.engines.onnx_session: `--threads`, a worker's share of the cores),
    where speechmos's own constructor makes them with ONNX Runtime's default, a thread per core
    in every worker. The same models and the same call, so the same scores."""
    import onnxruntime as ort

    model = dnsmos.DNSMOS.__new__(dnsmos.DNSMOS)
    model.primary_model_path = primary
    model.onnx_sess = ort.InferenceSession(primary, sess_options=session_options(), providers=CPU)
    model.p808_onnx_sess = ort.InferenceSession(p808, sess_options=session_options(), providers=CPU)
    return model


class DnsmosScorer:
    """DNSMOS P.835 SIG/BAK/OVRL and P.808 of each turn, with speechmos's models (loaded once)."""

    name = "dnsmos"

    def __init__(self) -> None:
        dnsmos = _package()
        models = os.path.join(os.path.dirname(os.path.abspath(dnsmos.__file__)), "dnsmos_models")
        self._model = _dnsmos(
            dnsmos, os.path.join(models, "sig_bak_ovr.onnx"), os.path.join(models, "model_v8.onnx")
        )
        self._rate = dnsmos.SR
        self.version = f"{VERSION}/speechmos-{speechmos_version()}/p835+p808"

    def score(self, batch: Sequence[TurnAudio]) -> list[Score]:
        out: list[Score] = []
        for turn in batch:
            samples = np.clip(np.asarray(turn.samples, dtype=np.float32), -1.0, 1.0)
            if not samples.size:
                samples = np.zeros(self._rate // 10, dtype=np.float32)
            got = self._model(samples, self._rate, False)
            out.append(
                {
                    "dnsmos_sig": round(float(got["sig_mos"]), 4),
                    "dnsmos_bak": round(float(got["bak_mos"]), 4),
                    "dnsmos_ovrl": round(float(got["ovrl_mos"]), 4),
                    "dnsmos_p808": round(float(got["p808_mos"]), 4),
                }
            )
        return out
