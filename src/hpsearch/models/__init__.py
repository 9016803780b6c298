"""Model builders shared by tasks; each imports Keras only when called."""

from __future__ import annotations

from hpsearch.models.resnet1d import build_resnet1d

__all__ = ["build_resnet1d"]
