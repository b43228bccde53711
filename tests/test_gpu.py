"""The GPU paths, where a GPU is present: FAISS builds IVF and Flat indexes on it (and they search like the CPU
ones), and the encoder runs in fp16 on CUDA. Elsewhere these tests skip and say why."""

from __future__ import annotations

import numpy as np
import pytest


def _faiss_gpus() -> int:
    import faiss

    return faiss.get_num_gpus() if hasattr(faiss, "get_num_gpus") else 0


needs_faiss_gpu = pytest.mark.skipif(_faiss_gpus() == 0, reason="no GPU visible to FAISS (a faiss-cpu build, or no "
                                                                "CUDA device): `make install GPU=1` on a GPU machine")


@needs_faiss_gpu
@pytest.mark.parametrize("factory", ["Flat", "IVF4,Flat"])
def test_gpu_index_build_matches_cpu(tmp_path, tiny_bert, tiny_dataset, factory):
    from click.testing import CliRunner

    from effir.cli import main
    from effir.index.build import LoadedIndex, build_index

    shards = tmp_path / "shards"
    r = CliRunner().invoke(main, ["encode", "-m", str(tiny_bert), "--corpus", str(tiny_dataset / "corpus.jsonl"),
                                  "--out", str(shards), "--device", "cpu"])
    assert r.exit_code == 0, r.output
    gpu = build_index(shards, tmp_path / "gpu", factory=factory, use_gpu=True)
    build_index(shards, tmp_path / "cpu", factory=factory, use_gpu=False)
    assert gpu["built_on"] == "gpu"
    from effir.encoder.shards import load_all

    _, x = load_all(shards)
    nprobe = 4 if "IVF" in factory else None
    a = LoadedIndex(tmp_path / "gpu", nprobe=nprobe).search(x[:5], 5)[1]
    b = LoadedIndex(tmp_path / "cpu", nprobe=nprobe).search(x[:5], 5)[1]
    assert np.array_equal(a[:, 0], b[:, 0])


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA device visible to torch")
def test_encoder_runs_fp16_on_cuda(tiny_bert):
    import torch

    from effir.core.models import resolve
    from effir.encoder.model import Encoder

    enc = Encoder(resolve(str(tiny_bert)))
    assert enc.device.startswith("cuda") and next(enc.model.parameters()).dtype == torch.float16
    cpu = Encoder(resolve(str(tiny_bert)), device="cpu").encode(["protein binding"])[0]
    np.testing.assert_allclose(enc.encode(["protein binding"])[0], cpu, atol=5e-3)
