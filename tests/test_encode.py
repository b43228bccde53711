"""Encoding: pooling, shards + manifest, and resume after SIGKILL with identical results."""

from __future__ import annotations

import contextlib
import json
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch

from effir.core.data import Corpus
from effir.core.models import resolve
from effir.encoder.model import Encoder
from effir.encoder.pooling import pool
from effir.encoder.shards import encode_corpus, load_all
from tests.conftest import subprocess_env, write_corpus


def test_pooling_ignores_padding():
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.allclose(pool(hidden, mask, "mean")[0], hidden[0, :2].mean(0))
    assert torch.equal(pool(hidden, mask, "last")[0], hidden[0, 1])
    assert torch.equal(pool(hidden, mask, "last")[1], hidden[1, 3])
    assert torch.equal(pool(hidden, mask, "cls")[0], hidden[0, 0])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])  # left padding: the last real token is the last position
    assert torch.equal(pool(hidden, left, "last"), hidden[:, 3])


def test_batching_does_not_change_embeddings(tiny_llama):
    """Length-sorted, padded batches give the same vectors as one text at a time."""
    enc = Encoder(resolve(str(tiny_llama)), device="cpu", max_tokens=200)
    texts = ["short", "a much longer text " * 5, "medium length text here", ""]
    batched, n_tokens = enc.encode(texts)
    single = np.concatenate([enc.encode([t])[0] for t in texts])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    ids = enc.tokenize(texts, "passage")
    assert all(x[-1] == enc.tokenizer.eos_token_id for x in ids)  # EOS appended
    assert list(n_tokens) == [len(x) for x in ids]
    assert np.allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_shards_and_manifest(tmp_path, tiny_bert):
    corpus = Corpus(write_corpus(tmp_path / "c.jsonl", 23)).validate()
    enc = Encoder(resolve(str(tiny_bert)), device="cpu")
    manifest = encode_corpus(enc, corpus, tmp_path / "out", shard_size=10, progress=False)
    assert [s["rows"] for s in manifest["shards"]] == [10, 10, 3]
    assert manifest["complete"] and manifest["dim"] == 32 and manifest["pooling"] == "mean"
    assert manifest["shards"][1]["first_row"] == 10 and manifest["shards"][1]["last_row"] == 19
    table = pq.read_table(tmp_path / "out" / "part-00000.parquet")
    assert table.schema.field("embedding").type.list_size == 32
    assert set(table.column_names) == {"docid", "embedding", "n_tokens"}
    ids, emb = load_all(tmp_path / "out")
    assert ids == [f"d{i}" for i in range(23)] and emb.shape == (23, 32)
    # float16 shards on request
    m16 = encode_corpus(enc, corpus, tmp_path / "out16", shard_size=10, dtype="float16", progress=False)
    assert m16["dtype"] == "float16"
    np.testing.assert_allclose(load_all(tmp_path / "out16")[1], emb, atol=2e-3)


def test_a_resumed_encode_counts_the_seconds_of_every_run_that_made_its_shards(tmp_path, tiny_bert):
    """Each shard keeps the seconds it took; an encode stopped after its first shards and run again encodes only the
    rest, and its cost is the sum over both runs (an end-to-end figure would otherwise count the last run only)."""
    from effir.encoder.shards import MANIFEST, encode_seconds

    corpus = Corpus(write_corpus(tmp_path / "c.jsonl", 23)).validate()
    enc = Encoder(resolve(str(tiny_bert)), device="cpu")
    out = tmp_path / "out"
    whole = encode_corpus(enc, corpus, out, shard_size=10, progress=False)
    assert all(s["seconds"] > 0 for s in whole["shards"])
    assert encode_seconds(whole) == pytest.approx(sum(s["seconds"] for s in whole["shards"]), abs=1e-3)
    # as if the run had stopped during the last shard: the manifest lists the first two, not complete
    (out / whole["shards"][2]["file"]).unlink()
    stopped = {**whole, "shards": whole["shards"][:2], "complete": False}
    (out / MANIFEST).write_text(json.dumps(stopped))
    encoded = []
    original = enc.encode
    enc.encode = lambda texts, **kw: encoded.append(len(texts)) or original(texts, **kw)
    resumed = encode_corpus(enc, corpus, out, shard_size=10, progress=False)
    assert encoded == [3] and resumed["shards"][:2] == whole["shards"][:2]
    assert encode_seconds(resumed) == pytest.approx(sum(s["seconds"] for s in resumed["shards"]), abs=1e-3)
    assert encode_seconds(resumed) > sum(s["seconds"] for s in whole["shards"][:2])
    # shards written before they kept their time: no sum to give
    del resumed["shards"][0]["seconds"]
    assert encode_seconds(resumed) is None


class _Stop(Exception):
    pass


def test_an_encode_stopped_mid_shard_resumes_from_its_saved_batches(tmp_path, tiny_bert, caplog):
    """A shard's finished batches are saved as it goes (here after every batch); a run stopped inside a shard and run
    again encodes only that shard's remaining batches, gives the vectors of an uninterrupted run, counts the seconds
    of both runs and leaves no partial file. Saved batches that another batching would not make are not used."""
    from effir.encoder.shards import MANIFEST, partial_name

    corpus = Corpus(write_corpus(tmp_path / "c.jsonl", 23)).validate()
    texts = [d.contents for d in corpus]
    enc = Encoder(resolve(str(tiny_bert)), device="cpu", max_tokens=100)  # 1-5 documents a batch: many batches
    n_batches = [len(enc.batches([len(x) for x in enc.tokenize(texts[i:i + 10], "passage")])) for i in (0, 10, 20)]
    assert n_batches[1] >= 4
    encode_corpus(enc, corpus, tmp_path / "whole", shard_size=10, progress=False)
    whole = load_all(tmp_path / "whole")[1]

    out, forward, calls = tmp_path / "out", enc.forward_ids, []

    def stop_in_second_shard(ids):  # after its first two batches
        calls.append(len(ids))
        if len(calls) == n_batches[0] + 3:
            raise _Stop
        return forward(ids)

    enc.forward_ids = stop_in_second_shard
    with pytest.raises(_Stop):
        encode_corpus(enc, corpus, out, shard_size=10, progress=False, checkpoint_s=0)
    assert len(json.loads((out / MANIFEST).read_text())["shards"]) == 1
    with np.load(out / partial_name(1)) as saved:
        assert int(saved["batches_done"]) == 2
        first_run_s = float(saved["seconds"])

    calls.clear()
    enc.forward_ids = lambda ids: calls.append(len(ids)) or forward(ids)
    with caplog.at_level("INFO", logger="effir.encoder.shards"):
        manifest = encode_corpus(enc, corpus, out, shard_size=10, progress=False, checkpoint_s=0)
    assert f"resuming after 2 of {n_batches[1]} batches" in caplog.text
    assert len(calls) == n_batches[1] - 2 + n_batches[2]
    np.testing.assert_allclose(load_all(out)[1], whole, atol=1e-6)
    assert manifest["complete"] and manifest["shards"][1]["seconds"] > first_run_s
    assert not list(out.glob("*.partial.npz")) and not list(out.glob("*.tmp"))

    # saved by a run that batched differently: the shard starts afresh, with a warning
    calls.clear()
    enc.forward_ids = stop_in_second_shard
    with pytest.raises(_Stop):
        encode_corpus(enc, corpus, out, shard_size=10, progress=False, checkpoint_s=0, overwrite=True)
    enc.forward_ids, enc.max_tokens = forward, 400
    with caplog.at_level("INFO", logger="effir.encoder.shards"):
        encode_corpus(enc, corpus, out, shard_size=10, progress=False, checkpoint_s=0)
    assert "other documents or batches" in caplog.text
    np.testing.assert_allclose(load_all(out)[1], whole, atol=1e-5)


def _encode_cmd(model, corpus, out, *options):
    return [sys.executable, "-m", "effir.cli", "encode", "--model", str(model), "--corpus", str(corpus),
            "--out", str(out), "--shard-size", "16", "--threads", "1", *options]


@pytest.mark.slow  # spawns an encoder process and kills it, resuming from its last whole shard
def test_resume_after_sigkill(tmp_path, tiny_llama):
    corpus = write_corpus(tmp_path / "c.jsonl", 400, seed=1)
    env = subprocess_env()
    reference = tmp_path / "reference"
    subprocess.run(_encode_cmd(tiny_llama, corpus, reference), check=True, env=env, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_encode_cmd(tiny_llama, corpus, out), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline = time.time() + 120  # kill at a random point once some shards exist
    target = random.Random().randint(1, 20)
    while time.time() < deadline and len(list(out.glob("part-*.parquet"))) < target and proc.poll() is None:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done_before = len(json.loads((out / "manifest.json").read_text())["shards"])
    subprocess.run(_encode_cmd(tiny_llama, corpus, out), check=True, env=env, capture_output=True)
    ids, emb = load_all(out)
    ref_ids, ref_emb = load_all(reference)
    assert done_before < 25
    assert ids == ref_ids and len(set(ids)) == 400
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    assert not list(out.glob("*.tmp"))


@pytest.mark.slow  # spawns an encoder process and kills it inside a shard, while it saves the shard's batches
def test_resume_after_sigkill_inside_a_shard(tmp_path, tiny_llama):
    corpus = write_corpus(tmp_path / "c.jsonl", 400, seed=2)
    env = subprocess_env()
    options = ("--shard-size", "200", "--max-tokens", "64", "--save-every", "0")  # 200 documents, ~50 batches each
    reference = tmp_path / "reference"
    subprocess.run(_encode_cmd(tiny_llama, corpus, reference, *options), check=True, env=env, capture_output=True)
    out = tmp_path / "killed"
    proc = subprocess.Popen(_encode_cmd(tiny_llama, corpus, out, *options), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    deadline, saves = time.time() + 120, random.Random().randint(1, 60)
    seen = set()  # (file, mtime) of every save seen: kill after a random number of them
    while time.time() < deadline and len(seen) < saves and proc.poll() is None:
        for f in out.glob("*.partial.npz"):
            with contextlib.suppress(FileNotFoundError):  # removed when its shard was written
                seen.add((f.name, f.stat().st_mtime_ns))
        time.sleep(0.005)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    left = list(out.glob("*.partial.npz"))
    assert seen, "the encode ended before it saved any batch"
    rerun = subprocess.run(_encode_cmd(tiny_llama, corpus, out, *options), check=True, env=env, capture_output=True,
                           text=True)
    if left:  # none only when the kill fell between a shard's last batch and the next shard's first save
        assert "resuming after" in rerun.stderr
    ids, emb = load_all(out)
    ref_ids, ref_emb = load_all(reference)
    assert ids == ref_ids
    np.testing.assert_allclose(emb, ref_emb, atol=1e-5)
    assert not list(out.glob("*.tmp")) and not list(out.glob("*.partial.npz"))


def test_resume_refuses_other_model(tmp_path, tiny_bert, tiny_llama):
    from click.testing import CliRunner

    from effir.cli import main

    corpus = write_corpus(tmp_path / "c.jsonl", 5)
    out = tmp_path / "out"
    r = CliRunner().invoke(main, ["encode", "-m", str(tiny_bert), "--corpus", str(corpus), "--out", str(out)])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["encode", "-m", str(tiny_llama), "--corpus", str(corpus), "--out", str(out)])
    assert r.exit_code != 0 and "different model_fingerprint" in r.output
