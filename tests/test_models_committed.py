"""Every system committed under models/ rebuilds from its base model and reproduces its recorded embeddings; those
under models/pending/ (trained, committed so the training is not lost, not yet encoded and scored) rebuild too."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from effir.compression.artefact import MANIFEST, PROBE, rebuild
from effir.compression.cli import probe_documents
from effir.encoder.model import Encoder
from tests.conftest import shared_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]

MODELS = Path(__file__).resolve().parents[1] / "models"
SYSTEMS = sorted(p.parent.name for p in MODELS.glob(f"*/{MANIFEST}"))
PENDING = sorted(f"pending/{p.parent.name}" for p in (MODELS / "pending").glob(f"*/{MANIFEST}"))


@pytest.mark.parametrize("system", SYSTEMS + PENDING)
def test_committed_system_rebuilds_to_its_recorded_embeddings(tmp_path, system):
    from safetensors.torch import load_file

    folder = MODELS / system
    manifest = json.loads((folder / MANIFEST).read_text())
    ids, texts = probe_documents(str(shared_dataset("scifact")), len(manifest["probe_ids"]))
    assert ids == manifest["probe_ids"]
    spec = rebuild(folder, tmp_path / folder.name)
    assert spec.dropped_mlp == manifest["dropped_mlp"]
    vectors, _ = Encoder(spec, device="cpu").encode(texts)
    recorded = load_file(str(folder / PROBE))["embeddings"].numpy()
    assert abs(vectors - recorded).max() <= 1e-4


@pytest.mark.parametrize("system", SYSTEMS)
def test_committed_system_records_what_it_scored(system):
    figures = json.loads((MODELS / system / MANIFEST).read_text())["figures"]
    assert figures.get("split") == "test" and 0 < figures.get("ndcg@10", 0) <= 1, \
        f"{system}: no test figures in its manifest (make demo-llm-all, then make record-llm)"


def test_every_artefact_file_is_small():
    for f in MODELS.rglob("*"):
        assert not f.is_file() or f.stat().st_size < 20 * 1024 * 1024, f
