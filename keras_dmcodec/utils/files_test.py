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
