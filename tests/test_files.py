from effir.core.files import atomic_path


def test_atomic_path_replaces_files_and_folders(tmp_path):
    target = tmp_path / "out"
    for value in ("first", "second"):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "f").write_text(value)
    assert (target / "f").read_text() == "second"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "x.json"
    target.write_text("old")
    try:
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("crash")
    except RuntimeError:
        pass
    assert target.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["x.json"]
