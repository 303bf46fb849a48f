"""Where feature extraction reads images from, and how one image is decoded.

Three input layouts, detected automatically:

* an ImageNet-style tree ``<root>/<wnid>/<file>`` (every non-hidden file in a class folder counts,
  so that a stray non-image is reported as skipped rather than silently ignored);
* per-synset tar files as ImageNet-21K ships them (``<root>/n01440764.tar``, or one ``.tar`` file):
  members are indexed once and later read *in place* by byte offset — 1.3 TB is never unpacked;
* a list file with one ``path<TAB>wnid`` per line (relative paths are relative to the list file); a
  path ``<file>.tar::<member>`` names a tar member, read in place like the per-synset tars (this is how
  a benchmark's images are listed in its own row order and with its own labels, features.xlsa17).

Every image gets the id ``<wnid>/<file stem>`` in all three layouts, so the same image keeps the same
id whether it is read from a tar or from an unpacked tree.
"""

from __future__ import annotations

import itertools
import re
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

import numpy as np

from zsl_scale.core import DataError
from zsl_scale.features.backbones import Preprocess, preprocess_image

InputKind = Literal["auto", "tree", "tars", "list"]


@dataclass(frozen=True, order=True)
class ImageRef:
    """One input image: its id and class, and where its bytes are.

    ``offset``/``size`` locate a tar member's data inside ``path``; ``offset == -1`` means the whole
    file at ``path``.
    """

    wnid: str
    image_id: str
    path: str
    offset: int = -1
    size: int = -1

    def to_row(self) -> list[str | int]:
        """Compact JSON-able form (what is shipped to decode tasks)."""
        return [self.image_id, self.path, self.offset, self.size]


def list_images(source: str | Path, kind: InputKind = "auto") -> tuple[str, list[ImageRef]]:
    """All images of ``source``, sorted by (wnid, image_id) so that shard assignment is deterministic.

    Returns the detected layout and the refs. Raises :class:`DataError` for a missing source, an
    empty one, or duplicate image ids.
    """
    src = Path(source).expanduser()
    if not src.exists():
        raise DataError(f"input not found: {src}")
    if kind == "auto":
        kind = _detect(src)
    if kind == "tree":
        refs = _list_tree(src)
    elif kind == "tars":
        tars = [src] if src.is_file() else sorted(p for p in src.glob("*.tar") if p.is_file())
        refs = [ref for tar in tars for ref in _list_tar(tar)]
    elif kind == "list":
        refs = _list_file(src)
    else:
        raise DataError(f"unknown input kind {kind!r}; use auto, tree, tars or list")
    if not refs:
        raise DataError(f"no images found in {src} (read as {kind}: expected <wnid>/<file>, *.tar or a list)")
    refs.sort()
    _check_unique(refs)
    return kind, refs


COMPRESSED_TARS = (".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")


def _compressed_tar(path: Path) -> bool:
    return path.name.lower().endswith(COMPRESSED_TARS)


def _refuse_compressed(what: str) -> DataError:
    return DataError(f"{what}: compressed tars are not supported (images are read in place from uncompressed "
                     "tars by offset); unpack them (tar -xf) or re-pack them uncompressed as .tar")


def _detect(src: Path) -> InputKind:
    if src.is_file():
        if _compressed_tar(src):
            raise _refuse_compressed(str(src))
        return "tars" if src.suffix == ".tar" else "list"
    if not src.is_dir():
        raise DataError(f"input is neither a file nor a directory: {src}")
    has_tars = any(p.suffix == ".tar" and p.is_file() for p in src.iterdir())
    has_dirs = any(p.is_dir() and not p.name.startswith(".") for p in src.iterdir())
    if has_tars and has_dirs:
        raise DataError(f"{src} holds both class folders and .tar files; pass --input-kind tree or tars")
    packed = [p for p in src.iterdir() if p.is_file() and _compressed_tar(p)]
    if packed and not has_tars and not has_dirs:
        raise _refuse_compressed(f"{src} holds {len(packed)} compressed tar(s) (e.g. {packed[0].name})")
    return "tars" if has_tars else "tree"


def _list_tree(root: Path) -> list[ImageRef]:
    refs = []
    for cls in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(cls.iterdir()):
            if f.is_file() and not f.name.startswith("."):
                refs.append(ImageRef(cls.name, f"{cls.name}/{f.stem}", str(f)))
    return refs


def _list_tar(tar_path: Path) -> list[ImageRef]:
    """Index a plain (uncompressed) tar: member data offsets, so decode tasks can seek straight to them."""
    wnid = tar_path.name.removesuffix(".tar")
    try:
        with tarfile.open(tar_path, mode="r:") as tf:
            members = [m for m in tf.getmembers() if m.isfile()]
    except tarfile.ReadError as exc:
        msg = f"cannot read {tar_path} as an uncompressed tar ({exc}); unpack or re-tar it"
        raise DataError(msg) from exc
    refs = []
    for m in members:
        name = PurePosixPath(m.name)
        if name.name.startswith("."):
            continue
        refs.append(ImageRef(wnid, f"{wnid}/{name.stem}", str(tar_path), m.offset_data, m.size))
    return refs


def _list_file(list_path: Path) -> list[ImageRef]:
    """Parse ``path<TAB>wnid`` lines; ``#`` comments, blank lines and a ``path wnid`` header are skipped."""
    base = list_path.parent
    refs = []
    tar_index: dict[Path, dict[str, tuple[int, int]]] = {}
    try:
        text = list_path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise DataError(f"{list_path} is not a text image list (path<TAB>wnid per line); a tar must end in "
                        ".tar") from None
    for lineno, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split("\t") if "\t" in line else line.rsplit(None, 1)
        if len(parts) != 2 or not parts[0].strip() or not parts[1].strip():
            raise DataError(f"{list_path}:{lineno}: expected 'path<TAB>wnid', got {raw!r}")
        path_s, wnid = parts[0].strip(), parts[1].strip()
        if lineno == 1 and (path_s.lower(), wnid.lower()) == ("path", "wnid"):
            continue
        tar_s, sep, member = path_s.partition("::")
        path = Path(tar_s)
        if not path.is_absolute():
            path = base / path
        if sep:
            refs.append(_tar_member_ref(path, member, wnid, tar_index, f"{list_path}:{lineno}"))
            continue
        refs.append(ImageRef(wnid, f"{wnid}/{path.stem}", str(path)))
    return refs


def _tar_member_ref(tar_path: Path, member: str, wnid: str, index: dict[Path, dict[str, tuple[int, int]]],
                    where: str) -> ImageRef:
    """The ref of one ``<tar>::<member>`` list entry; each tar's headers are indexed once per list."""
    if tar_path not in index:
        if not tar_path.is_file():
            raise DataError(f"{where}: tar file not found: {tar_path}")
        index[tar_path] = {r.path: (r.offset, r.size) for r in _member_refs(tar_path)}
    if member not in index[tar_path]:
        raise DataError(f"{where}: {tar_path} has no member {member!r}")
    offset, size = index[tar_path][member]
    return ImageRef(wnid, f"{wnid}/{PurePosixPath(member).stem}", str(tar_path), offset, size)


def _member_refs(tar_path: Path) -> list[ImageRef]:
    """Every file member of a tar as a ref whose ``path`` field is the member name (for indexing)."""
    try:
        with tarfile.open(tar_path, mode="r:") as tf:
            return [ImageRef("", m.name, m.name, m.offset_data, m.size) for m in tf.getmembers() if m.isfile()]
    except tarfile.ReadError as exc:
        raise DataError(f"cannot read {tar_path} as an uncompressed tar ({exc}); unpack or re-tar it") from exc


def _check_unique(refs: list[ImageRef]) -> None:
    for prev, cur in itertools.pairwise(refs):
        if prev.image_id == cur.image_id:
            raise DataError(
                f"duplicate image id {cur.image_id!r} ({prev.path} and {cur.path}); image ids are "
                "<wnid>/<file stem> and must be unique"
            )


# Untrusted images are bounded before decoding: a "decompression bomb" (a small file that decodes to
# gigapixels) or an absurd strip would otherwise take a worker's memory. 50 MP of RGB is 150 MB.
MAX_FILE_BYTES = 64 << 20
MAX_PIXELS = 50_000_000
MAX_ASPECT = 25.0


class ImageRejected(ValueError):
    """An image outside the limits above; skipped with this reason."""


def read_bytes(path: str, offset: int = -1, size: int = -1) -> bytes:
    """The bytes of an image file, or of a tar member read in place by offset (at most MAX_FILE_BYTES)."""
    with open(path, "rb") as fh:
        if offset < 0:
            data = fh.read(MAX_FILE_BYTES + 1)
            if len(data) > MAX_FILE_BYTES:
                raise ImageRejected(f"file larger than {MAX_FILE_BYTES >> 20} MiB")
            return data
        if size > MAX_FILE_BYTES:
            raise ImageRejected(f"file larger than {MAX_FILE_BYTES >> 20} MiB")
        fh.seek(offset)
        data = fh.read(size)
    if len(data) != size:
        raise OSError(f"tar member truncated: wanted {size} bytes at {offset}, got {len(data)}")
    return data


def decode_image(data: bytes, spec: Preprocess) -> np.ndarray:
    """Decode image bytes to uint8 ``[crop, crop, 3]``; raises on anything that is not a readable image."""
    import io

    from PIL import Image

    with Image.open(io.BytesIO(data)) as img:  # reads the header only: size is known before decoding
        check_image_size(*img.size)
        img.load()
        return preprocess_image(img, spec)


def check_image_size(width: int, height: int) -> None:
    """Raise :class:`ImageRejected` for an image beyond MAX_PIXELS or MAX_ASPECT (before it is decoded)."""
    if width * height > MAX_PIXELS:
        raise ImageRejected(f"{width}x{height} pixels exceeds the limit of {MAX_PIXELS:,}")
    if min(width, height) < 1 or max(width, height) / min(width, height) > MAX_ASPECT:
        raise ImageRejected(f"{width}x{height} has an aspect ratio beyond {MAX_ASPECT:g}:1")


def skip_reason(exc: BaseException) -> str:
    """A reason that is the same for the same input: object reprs (``<_io.BytesIO object at 0x…>``) are
    replaced, so manifests of identical inputs are identical."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: " + re.sub(r"<[^<>]*? at 0x[0-9a-fA-F]+>", "<image bytes>", text)


def load_image(row: list[str | int], spec: Preprocess) -> tuple[np.ndarray | None, str]:
    """Decode one :meth:`ImageRef.to_row`; a bad image gives ``(None, reason)`` instead of raising.

    Corrupt or unreadable images must never abort a 14M-image job: they are counted and listed. Only
    what a bad *input* raises is caught (:func:`decode_errors`); any other exception is a bug in this code
    and propagates, so it fails the job instead of turning every image into "skipped".
    """
    _, path, offset, size = row
    try:
        return decode_image(read_bytes(str(path), int(offset), int(size)), spec), ""
    except decode_errors() as exc:
        return None, skip_reason(exc)


def decode_errors() -> tuple[type[BaseException], ...]:
    """The exceptions that mean "this file is not a readable image", as PIL and the reads above raise them.

    ``OSError`` (PIL's ``UnidentifiedImageError``, truncated or broken data, an unreadable file or tar
    member), ``ValueError`` (PIL's bad modes or sizes, and :class:`ImageRejected`), PIL's
    ``DecompressionBombError``, and ``SyntaxError`` / ``EOFError`` (how PIL's format plugins report
    malformed or short data). Corrupting real JPEG/PNG/GIF/BMP/TIFF/WebP bytes at random raised only
    these types (tests/reliability/test_cli_errors.py).
    """
    from PIL import Image

    return OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError
