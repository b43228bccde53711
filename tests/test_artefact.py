"""A trained system kept as small pieces (LoRA adapter, cut, kept channels) rebuilds to the same model."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from effir.cli import main
from effir.compression.artefact import MANIFEST, ArtefactError, rebuild, verify
from effir.core.models import resolve
from effir.encoder.model import Encoder

# the module fixture trains the whole recipe: one pytest-xdist worker (`--dist loadgroup`) builds it, once
pytestmark = pytest.mark.xdist_group("artefact")

TEXTS = ["protein binding in the cell", "the immune response to a virus", "heart and lung tissue"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_llama):
    """drop 2 of 4 MLPs, slim 30 % of the rest, LoRA-train: the full recipe on the tiny model."""
    from effir.compression.steps import effir_recipe
    from effir.compression.train import TrainConfig
    from tests.conftest import write_corpus

    root = tmp_path_factory.mktemp("data")
    (root / "qrels").mkdir()
    write_corpus(root / "corpus.jsonl", 40)
    docs = [json.loads(line) for line in open(root / "corpus.jsonl")]
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": docs[i]["title"]}) + "\n"
                                                for i in range(16)))
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" +
                                              "".join(f"q{i}\td{i}\t1\n" for i in range(16)))
    out = tmp_path_factory.mktemp("recipe")
    steps = effir_recipe(str(tiny_llama), str(root), out, drop_fraction=0.5, reduction=0.3,
                         cfg=TrainConfig(batch_size=4, max_steps=3, lr=1e-2, lora=True, lora_r=4, negatives=0),
                         calibration=8)
    assert not list(out.rglob("bm25")), "no hard negatives drawn, so no Lucene index is built"
    return steps["final"], root


def _export(tmp_path, trained, tiny_llama, name="sys"):
    folder, data = trained
    out = tmp_path / "models" / name
    r = CliRunner().invoke(main, ["compress", "export", folder, "--base", str(tiny_llama), "--out", str(out),
                                  "--dataset", str(data), "--probe", "5", "--command", "make train-llm"])
    assert r.exit_code == 0, r.output
    return out


def test_export_rebuild_reproduces_the_trained_model(tmp_path, trained, tiny_llama):
    out = _export(tmp_path, trained, tiny_llama)
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["command"] == "make train-llm" and len(manifest["probe_ids"]) == 5
    assert set(manifest["files"]) == {"adapter/adapter_model.safetensors", "adapter/adapter_config.json",
                                      "channels.safetensors", "probe.safetensors"}
    assert len(manifest["dropped_mlp"]) == 2 and manifest["training"]["config"]["lora"]
    r = CliRunner().invoke(main, ["compress", "rebuild", str(out), "--out", str(tmp_path / "rebuilt")])
    assert r.exit_code == 0, r.output
    rebuilt = Encoder(resolve(str(tmp_path / "rebuilt")), device="cpu").encode(TEXTS)[0]
    original = Encoder(resolve(trained[0]), device="cpu").encode(TEXTS)[0]
    np.testing.assert_allclose(rebuilt, original, atol=1e-3)  # fp16 adapter
    assert not np.allclose(original, Encoder(resolve(str(tiny_llama)), device="cpu").encode(TEXTS)[0], atol=1e-3)


def test_an_adapter_over_the_file_limit_is_split_and_joined_on_rebuild(tmp_path, trained, tiny_llama):
    """An adapter larger than the 20 MB a committed file may take is split into shards under that; the rebuild joins
    them into exactly the model the one-file adapter gives."""
    from safetensors.torch import load_file

    from effir.compression.artefact import _adapter_state, export

    whole = _export(tmp_path, trained, tiny_llama, name="whole")
    limit = (whole / "adapter" / "adapter_model.safetensors").stat().st_size // 3
    split = tmp_path / "models" / "split"
    export(trained[0], str(tiny_llama), split, ["d0"], [TEXTS[0]], shard_bytes=limit)
    shards = sorted((split / "adapter").glob("adapter_model-*.safetensors"))
    assert len(shards) >= 3 and not (split / "adapter" / "adapter_model.safetensors").exists()
    assert [f.name for f in shards][-1].endswith(f"-of-{len(shards):05d}.safetensors")
    assert all(len(load_file(str(f))) for f in shards)
    assert {f"adapter/{f.name}" for f in shards} <= set(verify(split)["files"])
    one, joined = _adapter_state(whole / "adapter"), _adapter_state(split / "adapter")
    assert one.keys() == joined.keys() and all(torch.equal(one[k], joined[k]) for k in one)
    rebuild(whole, tmp_path / "r-whole")
    rebuild(split, tmp_path / "r-split")
    np.testing.assert_array_equal(Encoder(resolve(str(tmp_path / "r-whole")), device="cpu").encode(TEXTS)[0],
                                  Encoder(resolve(str(tmp_path / "r-split")), device="cpu").encode(TEXTS)[0])
    shards[1].rename(shards[1].with_name("adapter_model-00002-of-00099.safetensors"))
    with pytest.raises(ArtefactError, match=r"split/adapter: expected the adapter's weights as .* found"):
        _adapter_state(split / "adapter")
    with pytest.raises(ArtefactError, match=r"adapter_model-00002-of-0000\d\.safetensors: missing"):
        rebuild(split, tmp_path / "never")
    assert not (tmp_path / "never").exists()


def test_an_adapter_that_does_not_fit_the_model_is_refused(tmp_path, tiny_llama):
    """A tensor the model has no place for, or a LoRA tensor the adapter lacks, stops the merge (PEFT alone would
    warn and merge what it found)."""
    from peft import LoraConfig, get_peft_model
    from safetensors.torch import load_file, save_file
    from transformers import AutoModel

    from effir.compression.artefact import _merge_adapter

    get_peft_model(AutoModel.from_pretrained(tiny_llama), LoraConfig(r=2, target_modules=["q_proj", "v_proj"])
                   ).save_pretrained(tmp_path / "adapter")
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    state = load_file(str(weights))
    _merge_adapter(AutoModel.from_pretrained(tiny_llama), tmp_path / "adapter")  # fits as saved
    save_file({k: v for k, v in state.items() if "layers.0." not in k}, str(weights))
    with pytest.raises(ArtefactError, match="adapter does not fit the model: .*missing"):
        _merge_adapter(AutoModel.from_pretrained(tiny_llama), tmp_path / "adapter")
    save_file({**state, "base_model.model.layers.9.self_attn.q_proj.lora_A.weight": torch.zeros(2, 32)}, str(weights))
    with pytest.raises(ArtefactError, match="adapter does not fit the model: unexpected"):
        _merge_adapter(AutoModel.from_pretrained(tiny_llama), tmp_path / "adapter")


def test_figures_recorded_only_from_a_model_rebuilt_from_the_artefact(tmp_path, trained, tiny_llama):
    out, data = _export(tmp_path, trained, tiny_llama), trained[1]
    rebuilt = tmp_path / "rebuilt"
    for args in (["compress", "rebuild", str(out), "--out", str(rebuilt)],
                 ["run", "--dataset", str(data), "-m", str(rebuilt), "--split", "train", "--out", str(tmp_path / "r")],
                 ["run", "--dataset", str(data), "-m", str(tiny_llama), "--split", "train", "--out", str(tmp_path / "b")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
    quantized = tmp_path / "int8"  # made from the rebuilt model, so not what the artefact rebuilds
    for args in (["compress", "quantize", "-m", str(rebuilt), "--method", "int8-dynamic", "--out", str(quantized)],
                 ["run", "--dataset", str(data), "-m", str(quantized), "--split", "train", "--out", str(tmp_path / "q")]):
        r = CliRunner().invoke(main, args)
        assert r.exit_code == 0, r.output
    assert "rebuilt_from" in json.loads((rebuilt / "effir.json").read_text())
    assert "rebuilt_from" not in json.loads((quantized / "effir.json").read_text())  # true of the rebuilt folder only
    for other in ("b", "q"):
        r = CliRunner().invoke(main, ["compress", "record", str(out), "--metrics", str(tmp_path / other / "metrics.json")])
        assert r.exit_code != 0 and "which was not rebuilt from" in r.output
    r = CliRunner().invoke(main, ["compress", "record", str(out), "--metrics", str(tmp_path / "r" / "metrics.json")])
    assert r.exit_code == 0, r.output
    scored = json.loads((tmp_path / "r" / "metrics.json").read_text())
    figures = verify(out)["figures"]  # the pieces still match their checksums
    assert figures["split"] == "train" and figures["ndcg@10"] == scored["ndcg@10"]
    spec = json.loads((rebuilt / "effir.json").read_text())
    (rebuilt / "effir.json").write_text(json.dumps({**spec, "pooling": "last"}))  # scored, then changed
    r = CliRunner().invoke(main, ["compress", "record", str(out), "--metrics", str(tmp_path / "r" / "metrics.json")])
    assert r.exit_code != 0 and "has changed since it was scored" in r.output


def test_tampered_or_missing_file_is_named(tmp_path, trained, tiny_llama):
    out = _export(tmp_path, trained, tiny_llama)
    with open(out / "channels.safetensors", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")
    with pytest.raises(ArtefactError, match="channels.safetensors: checksum mismatch"):
        rebuild(out, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    shutil.rmtree(out / "adapter")
    with pytest.raises(ArtefactError, match=r"adapter/adapter_\w+\.\w+: missing"):
        verify(out)


def test_other_base_weights_are_refused(tmp_path, trained, tiny_llama, tiny_bert):
    out = _export(tmp_path, trained, tiny_llama)
    manifest = json.loads((out / MANIFEST).read_text())
    manifest["base_sha256"] = "0" * 64
    (out / MANIFEST).write_text(json.dumps(manifest))
    r = CliRunner().invoke(main, ["compress", "rebuild", str(out), "--out", str(tmp_path / "never")])
    assert r.exit_code != 0 and "other weights" in r.output and not (tmp_path / "never").exists()


def test_a_system_cut_from_a_trained_parent_artefact(tmp_path, tiny_llama):
    """Parent: LoRA-trained, exported. Child: the rebuilt parent cut, then taught to imitate it (distillation only),
    exported with the parent's artefact as its base: rebuilds through the parent, and notices a changed parent. The
    cut trained again exported on the cut's artefact: rebuilds through both; a further cut on it is refused."""
    from effir.compression.pairs import Example
    from effir.compression.steps import drop, finetune
    from effir.compression.train import TrainConfig
    from tests.conftest import write_corpus

    data = tmp_path / "data"
    (data / "qrels").mkdir(parents=True)
    write_corpus(data / "corpus.jsonl", 20)
    (data / "queries.jsonl").write_text("")
    examples = [Example(f"about {w}", f"a passage about {w} and more", []) for w in "abcdefgh"]
    lora = dict(batch_size=4, max_steps=2, lr=1e-2, lora=True, lora_r=4, negatives=0)
    finetune(str(tiny_llama), tmp_path / "p", examples, TrainConfig(**lora), tmp_path / "pw")
    parent = tmp_path / "models" / "parent"
    run = lambda *args: CliRunner().invoke(main, ["compress", *map(str, args)])  # noqa: E731
    assert run("export", tmp_path / "p", "--base", tiny_llama, "--out", parent, "--dataset", data,
               "--probe", "3").exit_code == 0
    assert run("rebuild", parent, "--out", tmp_path / "rp").exit_code == 0
    drop(str(tmp_path / "rp"), tmp_path / "cut", None, mlp_layers=[1])
    child = finetune(str(tmp_path / "cut"), tmp_path / "c", examples,
                     TrainConfig(**lora, distill_weight=1.0, contrastive_weight=0.0), tmp_path / "cw",
                     teacher=str(tmp_path / "rp"))
    log = [json.loads(line) for line in (tmp_path / "cw" / "log.jsonl").read_text().splitlines()]
    assert all(s["loss"] == pytest.approx(s["distill"], abs=1e-4) for s in log)  # imitation only
    out = tmp_path / "models" / "child"
    r = run("export", child.path, "--base", parent, "--out", out, "--dataset", data, "--probe", "3")
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / MANIFEST).read_text())
    assert manifest["base"] == str(parent) and manifest["dropped_mlp"] == [1]
    rebuilt = rebuild(out, tmp_path / "rc")
    np.testing.assert_allclose(Encoder(rebuilt, device="cpu").encode(TEXTS)[0],
                               Encoder(resolve(child.path), device="cpu").encode(TEXTS)[0], atol=1e-3)
    # the cut trained further (its cut unchanged) has the cut's artefact as its base: only its adapter is new
    grandchild = finetune(str(tmp_path / "rc"), tmp_path / "g", examples,
                          TrainConfig(**lora, distill_weight=1.0, contrastive_weight=0.0), tmp_path / "gw",
                          teacher=str(tmp_path / "rp"))
    further = tmp_path / "models" / "grandchild"
    r = run("export", grandchild.path, "--base", out, "--out", further, "--dataset", data, "--probe", "3")
    assert r.exit_code == 0, r.output
    assert sorted(p.name for p in further.iterdir()) == ["adapter", "manifest.json", "probe.safetensors"]
    assert json.loads((further / MANIFEST).read_text())["dropped_mlp"] == [1]
    np.testing.assert_allclose(Encoder(rebuild(further, tmp_path / "rg"), device="cpu").encode(TEXTS)[0],
                               Encoder(resolve(grandchild.path), device="cpu").encode(TEXTS)[0], atol=1e-3)
    # but a second cut on the cut is refused, before anything is written
    drop(str(tmp_path / "rc"), tmp_path / "recut", None, mlp_layers=[2])
    r = run("export", tmp_path / "recut", "--base", out, "--out", tmp_path / "models" / "recut", "--dataset", data,
            "--probe", "3", "--adapter", grandchild.path + "/adapter")
    assert r.exit_code != 0 and "is itself compressed and" in r.output and "cuts further" in r.output
    assert not (tmp_path / "models" / "recut").exists()
    # the parent's figures may change; its weights may not
    pm = json.loads((parent / MANIFEST).read_text())
    (parent / MANIFEST).write_text(json.dumps({**pm, "figures": {"ndcg@10": 0.5}}))
    rebuild(out, tmp_path / "rc2")
    with open(parent / "adapter" / "adapter_model.safetensors", "r+b") as f:
        f.seek(-1, 2)
        f.write(b"\x00" if f.read(1) != b"\x00" else b"\x01")
    with pytest.raises(ArtefactError, match="parent/adapter/adapter_model.safetensors: checksum mismatch"):
        rebuild(out, tmp_path / "never")
    assert not (tmp_path / "never").exists()
    with pytest.raises(ArtefactError, match="parent/adapter/adapter_model.safetensors: checksum mismatch"):
        rebuild(further, tmp_path / "never")  # through the cut to the parent


def test_a_committed_cut_trained_again_keeps_its_channels(tmp_path, trained, tiny_llama):
    """--channels-from: another training of a committed system's cut (here another seed) starts from exactly its kept
    channels and scales, not from gates trained again; a model with other weights, or a plan that drops other MLPs,
    is refused before anything is written."""
    from effir.compression.slim import CHANNELS_FILE, load_channels
    from effir.compression.steps import effir_recipe
    from effir.compression.train import TrainConfig
    from effir.core.errors import EffirError

    artefact = _export(tmp_path, trained, tiny_llama)
    folder, data = trained
    importance = str(Path(folder).parent / "0-analyze" / "importance.json")
    cfg = TrainConfig(batch_size=4, max_steps=1, lr=1e-2, lora=True, lora_r=4, negatives=0, seed=1)
    again = dict(drop_fraction=0.5, reduction=0.3, importance=importance, channels_from=str(artefact))
    steps = effir_recipe(str(tiny_llama), str(data), tmp_path / "again", cfg=cfg, **again)
    committed = load_channels(artefact / CHANNELS_FILE)
    for stage in ("slim", "final"):
        made = load_channels(Path(steps[stage]) / CHANNELS_FILE)
        assert made.keys() == committed.keys()
        for i, (keep, scale) in committed.items():
            assert torch.equal(made[i][0], keep) and torch.equal(made[i][1], scale)
    slim_step = json.loads((tmp_path / "again" / "2-slim" / "effir.json").read_text())["history"][-1]
    assert slim_step["by"] == "channels-from" and slim_step["artefact"] == str(artefact)
    assert json.loads((tmp_path / "again" / "recipe.json").read_text())["slim_by"] == "channels-from"
    # rerun: resumes, having checked the width step holds those channels
    effir_recipe(str(tiny_llama), str(data), tmp_path / "again", cfg=cfg, **again)

    with pytest.raises(ArtefactError, match="the model to cut has other weights"):
        effir_recipe(folder, str(data), tmp_path / "other-model", cfg=cfg, **again)
    scores = json.loads(Path(importance).read_text())
    dropped = json.loads((artefact / MANIFEST).read_text())["dropped_mlp"]
    other = {**scores, "mlp": [1.0 if i in dropped else 0.0 for i in range(len(scores["mlp"]))]}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(EffirError, match=r"drops MLPs \["):
        effir_recipe(str(tiny_llama), str(data), tmp_path / "other-plan", cfg=cfg,
                     **{**again, "importance": str(tmp_path / "other.json")})
    with pytest.raises(EffirError, match="of the MLP width, this plan"):
        effir_recipe(str(tiny_llama), str(data), tmp_path / "other-width", cfg=cfg, **{**again, "reduction": 0.1})
    assert not any((tmp_path / d).exists() for d in ("other-model", "other-plan", "other-width"))
    # the CLI refuses a width choice beside it rather than ignoring it
    r = CliRunner().invoke(main, ["compress", "effir", "-m", str(tiny_llama), "--dataset", str(data), "--out",
                                  str(tmp_path / "cli"), "--channels-from", str(artefact), "--slim-steps", "3"])
    assert r.exit_code != 0 and "--slim-steps would choose it" in r.output and not (tmp_path / "cli").exists()
