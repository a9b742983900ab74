"""The submit stage's knobs: where the leaderboard file goes and how many gallery images per line."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SubmitConfig:
    """params.yaml section ``submit``."""

    out: str = "outputs/submission.csv"
    length: int = 10

    def validate(self) -> None:
        if self.length < 1:
            raise ValueError("length must be at least 1")
