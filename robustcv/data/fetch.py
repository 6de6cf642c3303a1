"""Download dataset files with checksums, only when a user asks (``robustcv data fetch``)."""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

from robustcv.core.errors import InputError, RobustcvError

__all__ = ["content_sha256", "fetch_files", "user_cache_dir"]


def user_cache_dir() -> Path:
    """Robustcv's cache folder: ``$XDG_CACHE_HOME/robustcv`` or ``~/.cache/robustcv``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "robustcv"


def content_sha256(path: str | Path) -> str:
    """SHA-256 of a file's *content*.

    gzip files are hashed after decompression, so the Debian package's re-compressed files and
    the upstream files give the same digest.

    Example:
        >>> import tempfile, os
        >>> p = os.path.join(tempfile.mkdtemp(), "a.bin")
        >>> _ = open(p, "wb").write(b"abc")
        >>> content_sha256(p)[:12]
        'ba7816bf8f01'
    """
    path = Path(path)
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    digest = hashlib.sha256()
    opener = gzip.open if gz else open
    with opener(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_files(
    files: dict[str, str], base_url: str, dest: str | Path, *, quiet: bool = False
) -> list[Path]:
    """Download ``files`` (name -> content SHA-256) from ``base_url`` into ``dest``.

    Files already present with the right checksum are kept. A download is written to a
    temporary name and moved into place only after its checksum matches.

    Raises:
        InputError: ``dest`` is empty, a file, or cannot be created.
        RobustcvError: the download failed or a checksum does not match.

    Example:
        >>> import tempfile, pathlib
        >>> src = pathlib.Path(tempfile.mkdtemp()); _ = (src / "a.txt").write_bytes(b"abc")
        >>> sha = content_sha256(src / "a.txt")
        >>> [p.name for p in fetch_files({"a.txt": sha}, src.as_uri() + "/", tempfile.mkdtemp(),
        ...                               quiet=True)]
        ['a.txt']
    """
    from tqdm import tqdm

    if not str(dest).strip():
        raise InputError("the destination folder is empty (''); give a folder path")
    dest = Path(dest).expanduser()
    if dest.exists() and not dest.is_dir():
        raise InputError(f"the destination {dest} is a file; give a folder (new or existing)")
    try:
        dest.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise InputError(
            f"cannot create the destination folder {dest} ({err.strerror or err}); choose a "
            "writable folder"
        ) from err
    out = []
    for name, sha in files.items():
        target = dest / name
        if target.is_dir():
            raise InputError(f"{target} is a folder; remove it or choose another destination")
        if target.exists() and content_sha256(target) == sha:
            out.append(target)
            continue
        url = base_url.rstrip("/") + "/" + name
        fd, tmp_name = tempfile.mkstemp(dir=dest, prefix=f".{name}.", suffix=".part")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh, urllib.request.urlopen(url, timeout=60) as resp:
                total = int(resp.headers.get("Content-Length") or 0) or None
                with tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=quiet) as bar:
                    for chunk in iter(lambda: resp.read(1 << 16), b""):
                        fh.write(chunk)
                        bar.update(len(chunk))
            got = content_sha256(tmp)
            if got != sha:
                raise RobustcvError(
                    f"checksum mismatch for {url}: expected {sha[:16]}..., got {got[:16]}...; "
                    "the download is corrupt or the mirror changed - try again later"
                )
            shutil.move(str(tmp), target)
        except (urllib.error.URLError, OSError, ValueError) as err:
            raise RobustcvError(f"could not download {url}: {err}") from err
        finally:
            tmp.unlink(missing_ok=True)
        out.append(target)
    return out
