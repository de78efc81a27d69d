"""Turns longer than the speech profile allows (LLaMA-Omni: 30 s, Whisper's window): split at
sentence boundaries into consecutive parts that each fit, or the dialog is rejected naming the
turn. A single sentence longer than the limit cannot be split and is always rejected."""

from __future__ import annotations

from ..audio import PAUSE_SEC
from ..errors import DialogError
from .render import TURN_PAD_SEC, Piece, Spoken, TurnRenderer

LONG_TURNS = ("split", "reject")


def turn_parts(
    renderer: TurnRenderer,
    pieces: list[Piece],
    limit_sec: float | None,
    policy: str,
    where: str,
    field: str,
    cid: str,
) -> list[tuple[str | None, Spoken]]:
    """A rendered turn as one part (text None: the turn's own), or, when it is longer than
    `limit_sec`, as consecutive parts of whole sentences that each fit (policy 'split') or a
    DialogError (policy 'reject')."""
    whole = renderer.finish(pieces)
    rate = renderer.sample_rate
    if limit_sec is None or whole.audio.shape[0] <= limit_sec * rate:
        return [(None, whole)]
    if policy == "reject":
        raise DialogError(
            f"the turn lasts {whole.audio.shape[0] / rate:.1f} s, longer than {limit_sec:g} s "
            "(the speech profile's limit); shorten it or let long turns be split",
            where,
            field,
            cid,
        )
    overhead = int(rate * TURN_PAD_SEC) * 2
    pause = int(rate * PAUSE_SEC)
    groups: list[list[Piece]] = [[]]
    for piece in pieces:
        if piece.audio.shape[0] + overhead > limit_sec * rate:
            raise DialogError(
                f"one sentence lasts {piece.audio.shape[0] / rate:.1f} s, longer than "
                f"{limit_sec:g} s, so the turn cannot be split to fit: {piece.text[:60]!r}",
                where,
                field,
                cid,
            )
        group = groups[-1]
        size = sum(p.audio.shape[0] for p in group) + pause * len(group) + piece.audio.shape[0] + overhead
        if group and size > limit_sec * rate:
            groups.append([])
        groups[-1].append(piece)
    return [(" ".join(p.text for p in g), renderer.finish(g)) for g in groups]
