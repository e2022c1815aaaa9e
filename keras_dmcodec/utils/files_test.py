import pytest

from keras_dmcodec.utils.files import atomic_output


def test_atomic_output_renames_on_success_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "out.npz"
    with atomic_output(target) as tmp:
        assert tmp.suffix == ".npz" and tmp.parent == target.parent
        tmp.write_text("done")
    assert target.read_text() == "done"
    with pytest.raises(RuntimeError):
        with atomic_output(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("interrupted")
    assert target.read_text() == "done"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.npz"]


def test_atomic_directory_replaces_whole_or_not_at_all(tmp_path):
    from keras_dmcodec.utils.files import atomic_directory

    target = tmp_path / "preset"
    with atomic_directory(target) as tmp:
        (tmp / "a.txt").write_text("1")
    with pytest.raises(RuntimeError):
        with atomic_directory(target) as tmp:
            (tmp / "b.txt").write_text("half")
            raise RuntimeError("interrupted")
    assert sorted(p.name for p in target.iterdir()) == ["a.txt"]
    with atomic_directory(target) as tmp:
        (tmp / "c.txt").write_text("2")
    assert sorted(p.name for p in target.iterdir()) == ["c.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preset"]


def test_atomic_outputs_get_the_default_mode_not_the_private_temp_one(tmp_path):
    import os
    import stat

    from keras_dmcodec.utils.files import _UMASK, atomic_directory

    with atomic_output(tmp_path / "f.txt") as tmp:
        tmp.write_text("x")
    with atomic_directory(tmp_path / "d") as tmp:
        (tmp / "a.txt").write_text("1")
    assert _UMASK == os.umask(_UMASK)  # the mask the process runs with
    # mkstemp gives 0600 and mkdtemp 0700 whatever the umask
    assert stat.S_IMODE((tmp_path / "f.txt").stat().st_mode) == 0o666 & ~_UMASK
    assert stat.S_IMODE((tmp_path / "d").stat().st_mode) == 0o777 & ~_UMASK
