"""Shared test set-up: a private model cache per test session, so the first GGUF conversion really runs.

Tests are CPU-only. The cache lives under pytest's temporary directory unless RRTF_TEST_CACHE_DIR points
at a persistent one (handy when iterating locally: the conversion takes ~20 s on 2 cores).
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

_cache = os.environ.get("RRTF_TEST_CACHE_DIR") or tempfile.mkdtemp(prefix="rrtf-test-cache-")
os.environ["RRTF_CACHE_DIR"] = _cache
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO


@pytest.fixture(scope="session")
def cache_root() -> Path:
    return Path(_cache)
