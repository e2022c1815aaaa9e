"""Atomic file output: write to a temporary file beside the target, then rename."""

import contextlib
import os
import tempfile
from pathlib import Path


def _read_umask():
    # os.umask can only be read by setting it; do that once, at import (single-threaded), not
    # per write, where another thread could create a file under the temporary mask.
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def _default_mode(path, base):
    # mkstemp / mkdtemp create private (0600 / 0700) entries; give the result the mode a plain
    # open() / mkdir() would have, so a replaced output stays readable by the same people.
    os.chmod(path, base & ~_UMASK)


@contextlib.contextmanager
def atomic_output(path):
    """Yields a temporary path in ``path``'s folder; renames it to ``path`` on success.

    The temporary file keeps ``path``'s suffix (writers such as ``np.savez`` and
    ``keras.Model.save`` go by it). On any error it is removed, so an
    interrupted write never leaves a half-written ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(prefix=f".tmp_{path.stem}.", suffix=path.suffix,
                                   dir=path.parent)
    os.close(handle)
    _default_mode(tmp, 0o666)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


@contextlib.contextmanager
def atomic_directory(path, prefix=None):
    """Yields a temporary folder beside ``path``; on success it replaces ``path`` whole.

    Used for outputs made of several files (presets, checkpoints, exports): an
    interrupted write leaves the previous ``path`` untouched and no partial folder.
    An existing ``path`` is removed only after everything was written.
    """
    import shutil

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=prefix or f".tmp_{path.name}.", dir=path.parent))
    _default_mode(tmp, 0o777)
    try:
        yield tmp
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
