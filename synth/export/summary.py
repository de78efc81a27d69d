"""What an export returns: how many items it wrote, and what it did to the data on the way (turns
dropped or split, files band-limited, shards reused), so a trainer's owner learns it from the
command's summary instead of from a model that silently lost audio."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class ExportSummary:
    """`count` items (`unit`: sample, turn, conversation, cut); `details`: named counts (e.g.
    {"split_turns": 2, "pieces": 5}); `notes`: one sentence per thing the user should know."""

    count: int
    unit: str
    details: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def format(self, out: str, name: str) -> str:
        """The lines `synth export` prints."""
        lines = [f"exported {self.count} {self.unit}(s) to {out} ({name})"]
        if self.details:
            lines.append("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in self.details.items()))
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)
