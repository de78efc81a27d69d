"""Seeded VITS noise for Piper: the graph's RandomNormalLike/RandomNormal nodes (the prior's noise,
scaled by noise_scale, and the duration predictor's, by noise_w) draw from ONNX Runtime's own
generator, which no input can seed, so two runs of the same dialogs gave different audio. Each
such node is replaced, in memory before the session is made, by a counter-based generator built
of plain ONNX ops and driven by a new int64 input `noise_seed` (shape [1]): the noise becomes a
function of (seed, node, element index) alone, whatever the process, thread or batch.

The generator, per replaced node k and for each of two lanes j (two independent uniforms):
    s     = mix((seed mod P) * B + k * C + j * D + 1 mod P)        (one value per run)
    h     = mix((i * A + s) mod P)      for i = 0 .. N-1, N the number of elements
    u_j   = (h div 256 + 0.5) / 2^23    in (0, 1), never 0 (log(0) would make inf, and inf * 0 NaN)
    z     = sqrt(-2 ln u_0) * cos(2 pi u_1)                        (Box-Muller)
reshaped to the replaced node's shape, scaled and shifted by its `scale` and `mean`, cast to its
dtype. P = 2^31 - 1 and every value stays below it before it is squared, so int64 never
overflows. `mix` is three rounds of h = (h * h + K_r) mod P, h = (h + h div 2^13) mod P: a
quadratic map mod P alone would leave h a polynomial in i, the integer division breaks that.

With noise_scale and noise_w 0 the noise is multiplied by 0 as before: the audio is the same
bytes as with the unseeded graph (tests/engines/test_piper.py checks it)."""

from __future__ import annotations

import hashlib
import math
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

NOISE_INPUT = "noise_seed"
NOISE_TAG = "seeded-noise-v1"  # part of the optimized graph's cache key: bump when the rewrite changes
DEFAULT_SEED = 0  # a request without a seed: a direct engine call is deterministic too
RANDOM_OPS = ("RandomNormalLike", "RandomNormal")

_P = 2_147_483_647  # 2^31 - 1, prime
_A = 1_103_515_245  # index multiplier
_B = 1_664_525_017  # seed multiplier (any value below P; the seed is taken mod P first)
_C = 362_436_069  # per replaced node
_D = 521_288_629  # per lane
_ROUNDS = (1_013_904_223, 1_442_695_041 % _P, 2_891_336_453 % _P)  # K_r of the three rounds
_FOLD = 8192  # h div 2^13, added back in each round
_DROP = 256  # 31 bits -> 23: a float32 holds (q + 0.5) exactly, so u stays inside (0, 1)


def seeded_noise(model: Any) -> int:
    """Replace the top-level graph's RandomNormalLike/RandomNormal nodes (an onnx ModelProto,
    edited in place) by the seeded generator and add the `noise_seed` input; returns how many
    were replaced (0: the graph is left as it was, without the input)."""
    from onnx import TensorProto, helper

    graph = model.graph
    targets = [n for n in graph.node if n.op_type in RANDOM_OPS]
    if not targets:
        return 0
    build = _Builder(graph)
    seed_mod = build.op("Mod", [NOISE_INPUT, build.const("P", _P)], "seed_mod")  # first: all read it
    nodes, k = list(graph.node), 0
    for node in nodes:
        if node.op_type not in RANDOM_OPS:
            build.nodes.append(node)
            continue
        _generator(build, node, k, seed_mod)  # in the node's place: its input is made by then
        k += 1
    del graph.node[:]
    graph.node.extend(build.nodes)
    graph.initializer.extend(build.initializers)
    graph.input.append(helper.make_tensor_value_info(NOISE_INPUT, TensorProto.INT64, [1]))
    return len(targets)


def run_seed(seed: int | None, run: int) -> int:
    """The `noise_seed` of a request's run-th session call (piper-tts runs the graph once per
    sentence of the text): a 62-bit hash of both, so that sentences draw different noise."""
    base = DEFAULT_SEED if seed is None else seed
    digest = hashlib.sha256(f"{base}:{run}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 2


class SeededSession:
    """A Piper session (or a wrapper of one) that piper-tts keeps calling as its own: each run
    gets `noise_seed` from the seed set by `seeded` for the calling thread (one request's runs
    numbered 0, 1, ...). A graph without the input is run as it is."""

    def __init__(self, session: Any):
        self.session = session
        self._local = threading.local()
        self._takes_seed: bool | None = None

    @contextmanager
    def seeded(self, seed: int | None) -> Iterator[None]:
        """Runs inside the block, in this thread, draw their noise from `seed`."""
        self._local.state = [seed, 0]
        try:
            yield
        finally:
            self._local.state = None

    def run(self, output_names: Any, feeds: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if self._takes_seed is None:
            self._takes_seed = any(i.name == NOISE_INPUT for i in self.session.get_inputs())
        if self._takes_seed:
            state = getattr(self._local, "state", None) or [None, 0]
            feeds = {**feeds, NOISE_INPUT: np.array([run_seed(state[0], state[1])], dtype=np.int64)}
            state[1] += 1
        return self.session.run(output_names, feeds, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.session, name)


class _Builder:
    """Nodes and constants added to a graph, named under one prefix."""

    def __init__(self, graph: Any):
        taken = {n.name for n in graph.node} | {i.name for i in graph.initializer}
        self.prefix = "/noise_seed"
        while any(name.startswith(self.prefix) for name in taken):
            self.prefix += "_"
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self._consts: dict[str, str] = {}

    def const(self, name: str, value: Any, dtype: Any = np.int64, scalar: bool = False) -> str:
        """A constant made once per name: shape [1] (it broadcasts against any shape), a scalar
        (Range's bounds), or the list given."""
        from onnx import numpy_helper

        key = f"{self.prefix}/const/{name}"
        if key not in self._consts:
            array = np.array(value if scalar or isinstance(value, list) else [value], dtype=dtype)
            self.initializers.append(numpy_helper.from_array(array, key))
            self._consts[key] = key
        return key

    def op(self, op_type: str, inputs: list[str], name: str, **attrs: Any) -> str:
        from onnx import helper

        out = f"{self.prefix}/{name}"
        self.nodes.append(helper.make_node(op_type, inputs, [out], name=out, **attrs))
        return out


def _mix(b: _Builder, h: str, name: str) -> str:
    """Three rounds of h = (h * h + K) mod P, h = (h + h div 2^13) mod P (int64, below 2^62)."""
    p = b.const("P", _P)
    for r, k in enumerate(_ROUNDS):
        sq = b.op("Mul", [h, h], f"{name}/r{r}/sq")
        h = b.op("Mod", [b.op("Add", [sq, b.const(f"K{r}", k)], f"{name}/r{r}/add"), p], f"{name}/r{r}/mod")
        fold = b.op("Div", [h, b.const("fold", _FOLD)], f"{name}/r{r}/fold")
        h = b.op("Mod", [b.op("Add", [h, fold], f"{name}/r{r}/addfold"), p], f"{name}/r{r}/modfold")
    return h


def _uniform(b: _Builder, index: str, seed_mod: str, k: int, lane: int) -> str:
    """Uniforms in (0, 1), float32, one per index, of lane `lane` of node k."""
    name = f"n{k}/u{lane}"
    p = b.const("P", _P)
    salt = (k * _C + lane * _D + 1) % _P
    s = b.op("Mul", [seed_mod, b.const("B", _B)], f"{name}/seed_b")
    s = b.op("Mod", [b.op("Add", [s, b.const(f"salt{k}_{lane}", salt)], f"{name}/salt"), p], f"{name}/s0")
    s = _mix(b, s, f"{name}/smix")
    h = b.op("Mul", [index, b.const("A", _A)], f"{name}/ia")
    h = b.op("Mod", [b.op("Add", [h, s], f"{name}/ias"), p], f"{name}/h0")
    h = _mix(b, h, f"{name}/hmix")
    q = b.op("Cast", [b.op("Div", [h, b.const("drop", _DROP)], f"{name}/drop")], f"{name}/float", to=1)
    q = b.op("Add", [q, b.const("half", 0.5, np.float32)], f"{name}/centre")
    return b.op("Mul", [q, b.const("scale23", 2.0**-23, np.float32)], f"{name}/u")


def _generator(b: _Builder, node: Any, k: int, seed_mod: str) -> None:
    """The nodes that stand for random node `node` (the k-th replaced), its output name kept."""
    from onnx import helper

    attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
    name = f"n{k}"
    if node.op_type == "RandomNormalLike":
        shape = b.op("Shape", [node.input[0]], f"{name}/shape")
        count = b.op("Size", [node.input[0]], f"{name}/size")
    else:
        dims = [int(d) for d in attrs["shape"]]
        shape = b.const(f"{name}_shape", dims)
        count = b.const(f"{name}_size", math.prod(dims), scalar=True)
    one, zero = b.const("one", 1, scalar=True), b.const("zero", 0, scalar=True)
    index = b.op("Range", [zero, count, one], f"{name}/index")
    u0 = _uniform(b, index, seed_mod, k, 0)
    u1 = _uniform(b, index, seed_mod, k, 1)
    log = b.op("Log", [u0], f"{name}/log")
    radius = b.op(
        "Sqrt", [b.op("Mul", [log, b.const("m2", -2.0, np.float32)], f"{name}/m2log")], f"{name}/radius"
    )
    turn = b.op("Mul", [u1, b.const("tau", 2 * math.pi, np.float32)], f"{name}/angle")
    angle = b.op("Cos", [turn], f"{name}/cos")
    z = b.op("Mul", [radius, angle], f"{name}/z")
    scale, mean = float(attrs.get("scale", 1.0)), float(attrs.get("mean", 0.0))
    if scale != 1.0:
        z = b.op("Mul", [z, b.const(f"{name}_scale", scale, np.float32)], f"{name}/scaled")
    if mean != 0.0:
        z = b.op("Add", [z, b.const(f"{name}_mean", mean, np.float32)], f"{name}/shifted")
    z = b.op("Reshape", [z, shape], f"{name}/reshape")
    if "dtype" in attrs:
        to = int(attrs["dtype"])
    elif node.op_type == "RandomNormal":
        to = 1
    else:
        to = 0  # the input's type: CastLike
    final = list(node.output)[0]
    if to == 1:
        b.nodes.append(helper.make_node("Identity", [z], [final], name=f"{b.prefix}/{name}/out"))
    elif to == 0:
        b.nodes.append(
            helper.make_node("CastLike", [z, node.input[0]], [final], name=f"{b.prefix}/{name}/out")
        )
    else:
        b.nodes.append(helper.make_node("Cast", [z], [final], name=f"{b.prefix}/{name}/out", to=to))
