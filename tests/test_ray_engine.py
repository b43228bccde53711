"""`effir encode --engine ray` (2 CPU actors on a local Ray) writes the shards the local engine writes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from effir.cli import main
from effir.encoder.shards import load_all
from tests.conftest import write_corpus

pytest.importorskip("ray")
pytestmark = pytest.mark.slow  # starts a local Ray cluster


def test_ray_engine_matches_local(tmp_path, tiny_llama):
    corpus = write_corpus(tmp_path / "c.jsonl", 90, seed=5)
    common = ["encode", "-m", str(tiny_llama), "--corpus", str(corpus), "--shard-size", "20"]
    r = CliRunner().invoke(main, common + ["--out", str(tmp_path / "local")])
    assert r.exit_code == 0, r.output
    # Ray runs in its own process: a Ray driver left in the test process (its signal handlers, threads) can crash
    # native code that later tests load there
    r = subprocess.run([sys.executable, "-m", "effir.cli", *common, "--out", str(tmp_path / "ray"), "--engine", "ray",
                        "--actors", "2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr[-2000:]
    ids_l, emb_l = load_all(tmp_path / "local")
    ids_r, emb_r = load_all(tmp_path / "ray")
    assert ids_r == ids_l and len(set(ids_r)) == 90
    np.testing.assert_allclose(emb_r, emb_l, atol=1e-5)
    ml, mr = (json.loads((tmp_path / d / "manifest.json").read_text()) for d in ("local", "ray"))
    assert [s["first_row"] for s in mr["shards"]] == [s["first_row"] for s in ml["shards"]]
    assert ml["model_fingerprint"] == mr["model_fingerprint"] and mr["complete"]
