"""The LLM demos' Makefile recipes, read by `make -n` (nothing runs): the headline demo benches the committed systems
it names, with the full model as the speed reference and each cut's peer, and the full demo still parses."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")


def dry_run(target: str, *variables: str) -> str:
    done = subprocess.run(["make", "-n", target, "THREADS=2", *variables], cwd=ROOT, capture_output=True, text=True,
                          check=True)
    return done.stdout


def bench_lines(text: str) -> list[str]:
    """The `effir bench` commands of a dry run, each joined across its continuation lines."""
    joined = text.replace("\\\n", " ")
    return [line for line in joined.splitlines() if "effir bench" in line]


@pytest.mark.parametrize("precision", ["bf16", "int8-token", None])  # None: the Makefile's choice for this CPU
def test_demo_llm_benches_the_headline_against_the_full_model(precision):
    from effir.core.device import native_bf16  # the Makefile reads the same CPU flags from /proc/cpuinfo

    scifact, transfer = bench_lines(dry_run("demo-llm", *([f"LLM_PRECISION={precision}"] if precision else [])))
    precision = precision or ("bf16" if native_bf16() else "int8-token")
    systems = dict(s.split("=", 1) if "=" in s else (s, None)
                   for s in re.search(r"--systems (\S+)", scifact).group(1).split(","))
    headline = ["smollm2-ft-3k-mixed3-r64", "smollm2-effir-d15-mixed3-r64", "smollm2-effir-1.5x-gact-mixed3-r64",
                "smollm2-effir-2x-gact-mixed3-r64", "smollm2-effir-d2-mixed3-r64"]
    lowered = (headline[0], headline[3], headline[4])  # the full model, the 2x cut and the 2-MLP cut
    low = [f"{name}-{precision}" for name in lowered]
    assert set(systems) == {"bm25", "smollm2-zs", *headline, *low}
    for name in headline:  # each rebuilt from its committed artefact
        assert (ROOT / "models" / name / "manifest.json").exists(), name
        assert systems[name] == f"runs/llm/rebuilt/{name}"
    assert "--reference smollm2-ft-3k-mixed3-r64" in scifact and "--control" in scifact and "--rounds 5" in scifact
    for cut in headline[1:]:
        assert f"--peer {cut}=smollm2-ft-3k-mixed3-r64" in scifact and f"--peer {cut}=smollm2-ft-3k-mixed3-r64" in transfer
    for name, parent in zip(low, lowered):
        assert systems[name] == f"runs/llm/baselines/{name}" and f"--parent {name}={parent}" in scifact
    assert "--out runs/demo-llm " in scifact and "--out runs/demo-llm/transfer " in transfer
    assert "cranfield" in transfer and "cisi" in transfer and "--rounds 0" in transfer


def test_demo_llm_all_benches_every_committed_system():
    lines = bench_lines(dry_run("demo-llm-all"))
    assert "--out runs/demo-llm-all " in lines[0]
    committed = {p.parent.name for p in (ROOT / "models").glob("smollm2-*/manifest.json")}
    assert committed <= set(re.findall(r"[,=]?(smollm2-[\w.-]+)=runs/llm/rebuilt/", lines[0]))
    assert all("--out runs/demo-llm-all/" in line for line in lines[1:])
    # the transfer of the mixed passes and their cuts takes those of its systems that are committed: a name without
    # an artefact (a recipe not yet trained) is left out, not the whole bench
    transfer = [line for line in lines if "--out runs/demo-llm-all/transfer-mixed3 " in line]
    assert len(transfer) == 1 and "smollm2-ft-3k-mixed4-r64=runs/llm/rebuilt/" in transfer[0]
    untrained = [line for line in bench_lines(dry_run("demo-llm-all", "LLM_TRANSFER_MIXED=smollm2-ft-3k no-artefact"))
                 if "--out runs/demo-llm-all/transfer-mixed3 " in line]
    assert len(untrained) == 1 and "no-artefact" not in untrained[0] and "--reference smollm2-ft-3k " in untrained[0]
