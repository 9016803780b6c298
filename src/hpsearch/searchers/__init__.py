"""Searchers: one converter per search library, each decoding to the same nested dict."""

from __future__ import annotations
