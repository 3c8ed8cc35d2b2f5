"""Writes that a kill, a full disk or any exception cannot leave half done.

- :func:`replace_folder` puts a completely written folder in place of another so that a complete
  folder (old or new) is at the destination at every instant: on Linux the two are swapped in one
  atomic ``renameat2(RENAME_EXCHANGE)``; elsewhere (or on a file system without it) the old folder
  is renamed aside, the new one renamed in, and :func:`recover_folder` finishes a replacement that
  a kill interrupted between the two renames.
- :func:`write_json_atomic` and :func:`write_bytes_atomic` write a temporary file in the same
  folder, fsync it and rename it into place; on any failure the temporary file is removed.
- :func:`read_json_state` reads a state file back and names the file and the way out when it is
  empty or damaged.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import shutil
import tempfile
from pathlib import Path

RENAME_EXCHANGE = 2  # linux/fs.h
AT_FDCWD = -100


def old_path(folder: Path) -> Path:
    """Where the previous content of ``folder`` waits while the new one is renamed in."""
    return folder.with_name(f".{folder.name}.old")


def ready_marker(tmp: Path) -> Path:
    """A file beside ``tmp`` that says ``tmp`` is completely written (so it may replace its target)."""
    return tmp.with_name(f"{tmp.name}.ready")


def _fsync_tree(folder: Path) -> None:
    for root, _, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        _fsync_dir(Path(root))


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two existing paths (Linux renameat2); False where the system cannot."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(AT_FDCWD, os.fsencode(a), AT_FDCWD, os.fsencode(b), RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV):
        return False
    raise OSError(code, f"cannot swap {a} and {b}: {os.strerror(code)}")


def replace_folder(tmp: Path, folder: Path, durable: bool = True) -> None:
    """Put the completely written folder ``tmp`` at ``folder``; a complete folder is there at every instant.

    A drop-in for "rename the old folder aside, rename the new one in, delete the old one". ``tmp``
    must be in the same file system (use a sibling such as ``.model.tmp``). With ``durable`` the
    new files are fsynced first, so a power cut cannot leave a renamed but empty file."""
    tmp, folder = Path(tmp), Path(folder)
    if not tmp.is_dir():
        raise FileNotFoundError(f"{tmp}: the new folder to put at {folder} does not exist")
    recover_folder(folder)  # finish a replacement a kill interrupted, before starting another
    if durable:
        _fsync_tree(tmp)
    marker = ready_marker(tmp)
    marker.write_text(str(folder.name) + "\n")
    old = old_path(folder)
    if old.exists():
        shutil.rmtree(old)
    if folder.is_symlink() or not folder.exists():
        if folder.is_symlink():  # a dangling or foreign link: replace the link, never its target
            folder.unlink()
        os.rename(tmp, folder)
    elif _exchange(tmp, folder):
        marker.unlink(missing_ok=True)  # tmp now holds the previous content: it must never be promoted
        tmp.rename(old)
    else:  # fallback: the folder is missing between these two renames; recover_folder finishes the job
        os.rename(folder, old)
        os.rename(tmp, folder)
    marker.unlink(missing_ok=True)
    _fsync_dir(folder.parent)
    shutil.rmtree(old, ignore_errors=True)


def recover_folder(folder: Path) -> Path | None:
    """Finish a :func:`replace_folder` that a kill interrupted; return the folder now in place, or None.

    When ``folder`` is missing: ``.folder.tmp`` (the new content) is moved in if it was complete (its
    ``.ready`` marker, or the old one already moved aside, which happens only after the new one is
    complete); else ``.folder.old`` (the previous content). A ``tmp`` still being written is left
    alone. When the folder cannot be renamed (a read-only place) the complete copy is returned to
    load from directly."""
    folder = Path(folder)
    if folder.exists():
        return folder
    old, tmp = old_path(folder), folder.with_name(f".{folder.name}.tmp")
    candidates = []
    if tmp.is_dir() and (ready_marker(tmp).exists() or old.is_dir()):
        candidates.append(tmp)
    if old.is_dir():
        candidates.append(old)
    for candidate in candidates:
        try:
            os.rename(candidate, folder)
        except OSError:
            return candidate
        ready_marker(candidate).unlink(missing_ok=True)
        if candidate is tmp:
            shutil.rmtree(old, ignore_errors=True)
        return folder
    return None


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """``data`` at ``path`` through a temporary file in the same folder; nothing is left behind on failure."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def write_json_atomic(path: Path, data) -> None:
    """``data`` as JSON at ``path``; a reader sees the old file or the new one, never a partial one."""
    write_bytes_atomic(Path(path), json.dumps(data, indent=2, default=float).encode("utf-8"))


def read_json_state(path: Path, what: str = "checkpoint state"):
    """The JSON object in ``path``, None when the file does not exist, or a ValueError naming the
    file when it is empty, not JSON or not an object (delete it or run without --resume)."""
    path = Path(path)
    if not path.exists():
        return None
    fix = "delete it or run without --resume"
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise ValueError(f"{path}: cannot read the {what} ({err.strerror or err}); {fix}") from None
    if not raw.strip():
        raise ValueError(f"{path}: the {what} file is empty (a write was interrupted); {fix}")
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"{path}: the {what} file is damaged ({err}); {fix}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the {what} file holds {type(data).__name__}, expected a JSON object; {fix}")
    return data
