"""Blended voices for a multi-speaker Piper model: its ONNX graph looks each speaker up in an
embedding table (`Gather(emb_g, sid)`); the graph is patched in memory, as piper-tts patches it for
alignments, so that the lookup becomes a weighted sum of the table's rows
(`MatMul(speaker_weights, emb_g)`), with a new input `speaker_weights` of one weight per speaker.
A catalog speaker is a one-hot row, a blend its recipe's weights; piper's own synthesis code runs
unchanged, its `sid` turned into the row by a thin wrapper around the session."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import ConfigError
from .onnx_session import session_options
from .piper_noise import seeded_noise

WEIGHTS_INPUT = "speaker_weights"


def embedding_input(model: Any, sid: str = "sid") -> int:
    """Replace the graph's speaker lookup by a weighted sum; returns the number of speakers."""
    from onnx import TensorProto, helper, numpy_helper

    tables = {init.name: init for init in model.graph.initializer}
    lookups = [
        n
        for n in model.graph.node
        if n.op_type == "Gather" and len(n.input) == 2 and n.input[1] == sid and n.input[0] in tables
    ]
    lookups = [n for n in lookups if len(numpy_helper.to_array(tables[n.input[0]]).shape) == 2]
    if not lookups:
        raise ConfigError("blends", "no speaker embedding lookup (Gather on sid) in this Piper model")
    rows = {numpy_helper.to_array(tables[n.input[0]]).shape[0] for n in lookups}
    if len(rows) != 1:
        raise ConfigError("blends", "the model's speaker tables disagree on the number of speakers")
    count = rows.pop()
    for node in lookups:
        index = list(model.graph.node).index(node)
        model.graph.node.remove(node)
        model.graph.node.insert(
            index, helper.make_node("MatMul", [WEIGHTS_INPUT, node.input[0]], list(node.output))
        )
    if not any(sid in n.input for n in model.graph.node):
        for graph_input in list(model.graph.input):
            if graph_input.name == sid:
                model.graph.input.remove(graph_input)
    model.graph.input.append(helper.make_tensor_value_info(WEIGHTS_INPUT, TensorProto.FLOAT, [1, count]))
    return count


class SpeakerWeightsSession:
    """An onnxruntime session of a patched graph that piper can keep calling with `sid`: the
    speaker index picks a row of `weights` (catalog speakers one-hot, blends their mix)."""

    def __init__(self, session: Any, weights: np.ndarray):
        self.session, self.weights = session, weights.astype(np.float32)

    def run(self, output_names: Any, feeds: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        feeds = dict(feeds)
        sid = feeds.pop("sid", np.array([0], dtype=np.int64))
        feeds[WEIGHTS_INPUT] = self.weights[int(np.asarray(sid).reshape(-1)[0])][None, :]
        return self.session.run(output_names, feeds, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


def blended_session(
    model_path: str, word_timings: bool, providers: list[Any], weights: np.ndarray
) -> SpeakerWeightsSession:
    """A session of the model's graph with its speaker lookup patched, its noise seeded
    (synth.engines.piper_noise; the caller wraps it in a SeededSession) and its alignment output
    when `word_timings`, `weights` holding one row per speaker and per blend."""
    import onnx
    import onnxruntime

    model = onnx.load(model_path)
    if word_timings:
        from piper.patch_voice_with_alignment import add_alignment_output

        add_alignment_output(model)
    count = embedding_input(model)
    seeded_noise(model)
    if weights.shape[1] != count:
        raise ConfigError(
            "blends", f"the model has {count} speakers in its table, the config {weights.shape[1]}"
        )
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), sess_options=session_options(), providers=providers
    )
    return SpeakerWeightsSession(session, weights)
