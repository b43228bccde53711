"""`effir run`'s stages are done only while their outputs exist unchanged; a rerun remakes what went missing."""

from __future__ import annotations

import json

from click.testing import CliRunner

from effir.cli import main


def test_rerun_remakes_deleted_or_changed_outputs(tmp_path, tiny_bert, tiny_dataset):
    args = ["run", "--dataset", str(tiny_dataset), "--model", str(tiny_bert), "--out", str(tmp_path / "r")]
    assert CliRunner().invoke(main, args).exit_code == 0
    run = tmp_path / "r" / "run.test.trec"
    first_run, first_index = run.read_text(), (tmp_path / "r" / "index" / "index.faiss").read_bytes()
    stages = json.loads((tmp_path / "r" / "stages.json").read_text())
    assert set(stages["search"]["outputs"]) == {"run.test.trec"}

    (tmp_path / "r" / "index" / "index.faiss").unlink()
    run.write_text(first_run.replace(" 1 ", " 9 ", 1))  # a run file changed by hand
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    assert (tmp_path / "r" / "index" / "index.faiss").read_bytes() == first_index
    assert run.read_text() == first_run
    # nothing missing: a third run redoes nothing
    before = (tmp_path / "r" / "stages.json").read_text()
    assert CliRunner().invoke(main, args).exit_code == 0
    assert (tmp_path / "r" / "stages.json").read_text() == before


def test_a_changed_model_is_encoded_again_into_its_stage_folder(tmp_path, tiny_bert, tiny_dataset):
    """The same --out for a model that changed since (a re-made folder): its stale shards are replaced, not resumed
    and not refused."""
    import shutil

    model = tmp_path / "model"
    shutil.copytree(tiny_bert, model)
    args = ["run", "--dataset", str(tiny_dataset), "--model", str(model), "--out", str(tmp_path / "r")]
    assert CliRunner().invoke(main, args).exit_code == 0
    first = json.loads((tmp_path / "r" / "shards" / "manifest.json").read_text())["model_fingerprint"]
    spec = json.loads((model / "effir.json").read_text()) if (model / "effir.json").exists() else {}
    (model / "effir.json").write_text(json.dumps({**spec, "pooling": "mean" if spec.get("pooling") == "cls" else "cls"}))
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "r" / "shards" / "manifest.json").read_text())
    assert manifest["complete"] and manifest["model_fingerprint"] != first
