"""Where the tools write: a folder the user names (default ./convlens-out/), files written atomically.

A file is first written to a temporary name in the same folder and then renamed over the final
name, so a reader never sees half a PNG and an interrupted run leaves no broken file.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from convlens.errors import ArgumentError

DEFAULT_OUT = Path("convlens-out")


class OutputError(ArgumentError):
    """The output folder cannot be created or written."""


def prepare_out_dir(out: Path, option: str = "--out") -> Path:
    """Create ``out`` if needed and check it is a writable folder; errors name the ``option`` it came from."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"{option} {out} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {option} folder {out}: {error.strerror or error}") from error
    if not os.access(out, os.W_OK | os.X_OK):
        raise OutputError(f"{option} folder {out} is not writable")
    return out


def prepare_out_file(path: Path, option: str) -> Path:
    """Check, before any work, that ``path`` can be written as a file: not a folder, in a folder that
    exists (or can be made) and is writable. Errors name the ``option`` it came from."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name, e.g. {option} {path / 'results.json'}")
    folder = path.parent
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{option} {path}: {folder} exists and is not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"{option} {path}: cannot create its folder {folder}: {error.strerror or error}") from error
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{option} {path}: its folder {folder} is not writable")
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> Path:
    path = Path(path)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
        os.chmod(temporary, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual permissions
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def save_figure(figure, path: Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure as PNG, atomically."""
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    return atomic_write_bytes(path, buffer.getvalue())
