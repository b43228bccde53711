"""SIGKILL at any point, then the same command: the result equals an uninterrupted run's. Training is killed while
it writes a checkpoint; `effir run` is killed inside each of its stages, after the stage wrote its output and
before it was recorded (encoding killed between and inside shards is `test_encode.test_resume_after_sigkill*`)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from tests.conftest import subprocess_env

pytestmark = pytest.mark.slow  # each case starts Python processes

ENV = subprocess_env()


def _examples(dataset):
    from effir.compression.pairs import Example
    from effir.core.data import BeirDataset

    ds = BeirDataset(dataset)
    docs = [d.contents for d in ds.corpus()]
    return [Example(query=docs[i][:40], positive=docs[i], negatives=[docs[i + 1]]) for i in range(0, 48, 2)]


def train_child(model: str, dataset: str, out: str, die_at_save: int = 0) -> None:
    """Run in a child process: fine-tune, checkpointing every step; with `die_at_save` N the N-th checkpoint write
    leaves half a file under its temporary name and the process SIGKILLs itself."""
    from effir.compression.steps import finetune
    from effir.compression.train import TrainConfig

    if die_at_save:
        calls, real_save = [0], torch.save

        def dying_save(obj, f, *args, **kwargs):
            calls[0] += 1
            if calls[0] == int(die_at_save):
                with open(f, "wb") as fh:
                    fh.write(b"half a checkpoint")
                os.kill(os.getpid(), signal.SIGKILL)
            return real_save(obj, f, *args, **kwargs)

        torch.save = dying_save
    torch.set_num_threads(1)
    cfg = TrainConfig(batch_size=4, epochs=2, lr=1e-3, checkpoint_every=1, seed=0)
    finetune(model, out, _examples(dataset), cfg, f"{out}.work")


def _child(function: str, *args) -> int:
    code = f"import tests.test_kill as t; t.{function}(*{list(map(str, args))!r})"
    return subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True).returncode


def test_training_killed_while_writing_a_checkpoint(tmp_path, tiny_bert, tiny_dataset):
    assert _child("train_child", tiny_bert, tiny_dataset, tmp_path / "whole") == 0
    assert _child("train_child", tiny_bert, tiny_dataset, tmp_path / "killed", 4) == -signal.SIGKILL
    work = tmp_path / "killed.work"
    assert torch.load(work / "checkpoint.pt", weights_only=False)["step"] == 3  # the last whole checkpoint
    assert _child("train_child", tiny_bert, tiny_dataset, tmp_path / "killed") == 0
    whole, resumed = (load_file(tmp_path / name / "model.safetensors") for name in ("whole", "killed"))
    assert whole.keys() == resumed.keys()
    for name in whole:
        torch.testing.assert_close(resumed[name], whole[name], atol=1e-6, rtol=0)
    steps = [json.loads(line)["step"] for line in (work / "log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 13))  # 24 examples / 4 × 2 epochs, each step logged once


def run_child(target: str, *args) -> None:
    """Run in a child process: `effir run ...` with `target` (module.function) SIGKILLing the process as soon as
    it returns: its stage's output is on disk, but not yet recorded as done."""
    import importlib

    module, name = target.rsplit(".", 1)
    mod = importlib.import_module(module)
    real = getattr(mod, name)

    def then_die(*a, **kw):
        real(*a, **kw)
        os.kill(os.getpid(), signal.SIGKILL)

    setattr(mod, name, then_die)
    from effir.cli import main

    main(list(args), standalone_mode=False)


STAGES = {"encode": "effir.encoder.shards.encode_corpus", "index": "effir.index.build.build_index",
          "search": "effir.pipeline.write_trec_run", "eval": "effir.eval.metrics.evaluate"}


@pytest.mark.parametrize("stage", list(STAGES))
def test_run_killed_in_a_stage(tmp_path, tiny_bert, tiny_dataset, stage):
    from click.testing import CliRunner

    from effir.cli import main

    def args(out):
        return ["run", "--dataset", str(tiny_dataset), "-m", str(tiny_bert), "--out", str(out), "--threads", "1"]

    assert CliRunner().invoke(main, args(tmp_path / "whole")).exit_code == 0
    assert _child("run_child", STAGES[stage], *args(tmp_path / "killed")) == -signal.SIGKILL
    r = CliRunner().invoke(main, args(tmp_path / "killed"))
    assert r.exit_code == 0, r.output
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert (killed / "run.test.trec").read_text() == (whole / "run.test.trec").read_text()
    metrics = [json.loads((f / "metrics.json").read_text()) for f in (whole, killed)]
    assert {k: metrics[1][k] for k in ("ndcg@10", "recall@100", "mrr@10")} == \
           {k: metrics[0][k] for k in ("ndcg@10", "recall@100", "mrr@10")}
    assert json.loads((killed / "stages.json").read_text()).keys() == {"encode", "index", "search"}
