"""A stable partition of a source by conversation id, so that N machines each make their share
of one source (`synth generate --shard I/N`) and a rerun of a shard resumes exactly that share.
The hash is SHA-256 of the id: independent of the source's order, the machine and Python's
per-process string hashing."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from ..errors import ConfigError


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            raise ConfigError(
                "shard",
                f"index must be in 0..{self.count - 1} and count at least 1",
                f"{self.index}/{self.count}",
            )

    @classmethod
    def parse(cls, spec: str) -> Shard:
        """'I/N', e.g. '0/4' .. '3/4'."""
        m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec)
        if not m:
            raise ConfigError("shard", "expected I/N, e.g. 0/4", spec)
        return cls(int(m.group(1)), int(m.group(2)))

    def owns(self, key: str) -> bool:
        digest = hashlib.sha256(key.encode("utf-8")).digest()
        return int.from_bytes(digest[:8], "big") % self.count == self.index

    def spec(self) -> str:
        return f"{self.index}/{self.count}"
