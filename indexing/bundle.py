"""The collection bundle file: a zstd-compressed tar of JSON, JSON Lines and NumPy arrays.

Layout (``FORMAT_VERSION`` 1), ``manifest.json`` first::

    manifest.json        format, version, sieve version, models per vector kind, counts,
                         and each other member's sha256 and size
    collection.json      the collection record and its BM25 length statistics
    documents.jsonl      one live document record per line
    chunks.jsonl         one chunk per line: point id and payload (text, provenance)
    dense.npy            float32 (chunks x dimension), the rows in chunks.jsonl order
    sparse.indptr.npy    int64 (chunks + 1); sparse.indices.npy uint32; sparse.values.npy
                         float32: the BM25 vectors in CSR form
    late.counts.npy      int32 (chunks): token vectors per chunk (0: none)
    late.rows.npy        float16 (tokens x dimension): every chunk's token vectors in order
    blobs/<sha256>       stored page images and their manifests
    extras/<name>        feedback.jsonl, evaluation.json

Every member is checked against the manifest while it is read; a truncated, corrupted or
foreign file fails with ``InvalidInput`` (code ``bad_bundle``) before anything is used.
Arrays are written to scratch files as they grow, so a writer holds no more than one
document's points in memory.
"""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import tarfile
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import numpy.typing as npt
import zstandard
from pydantic import BaseModel, Field, ValidationError

from core.errors import InvalidInput

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BundleContents",
    "BundleManifest",
    "BundleModels",
    "BundleWriter",
    "MemberDigest",
    "open_bundle",
]

FORMAT = "sieve-collection-bundle"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_ARRAYS = (
    "dense.npy",
    "sparse.indptr.npy",
    "sparse.indices.npy",
    "sparse.values.npy",
    "late.counts.npy",
    "late.rows.npy",
)
_COPY_CHUNK = 1 << 20
# zstd level 3: the library's default; vectors compress little, texts well.
_ZSTD_LEVEL = 3
_MAX_MANIFEST_BYTES = 16 * 1024 * 1024


def _bad(message: str) -> InvalidInput:
    return InvalidInput(f"not a usable Sieve bundle: {message}", code="bad_bundle")


class MemberDigest(BaseModel):
    """One member's checksum and size (uncompressed)."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    bytes: int = Field(ge=0)


class BundleModels(BaseModel):
    """The models that computed the bundle's vectors, per vector kind."""

    dense_model: str
    dense_dimension: int = Field(gt=0)
    distance: str = "cosine"
    sparse: str | None = "bm25"
    late_model: str | None = None
    late_dimension: int | None = None


class BundleManifest(BaseModel):
    """What a bundle holds, and how to check it is whole."""

    format: str
    format_version: int
    sieve_version: str
    created_at: float = Field(default_factory=time.time)
    collection: str
    models: BundleModels
    counts: dict[str, int] = Field(default_factory=dict)
    members: dict[str, MemberDigest] = Field(default_factory=dict)


class _Column:
    """A growing array of fixed-width rows, kept in a raw scratch file until ``finish``."""

    def __init__(self, path: Path, dtype: str, width: int | None) -> None:
        self.path, self.dtype, self.width = path, np.dtype(dtype), width
        self._raw = path.with_suffix(".raw").open("wb")
        self.rows = 0

    def append(self, values: npt.ArrayLike) -> None:
        array = np.asarray(values, dtype=self.dtype)
        if self.width is not None:
            array = array.reshape(-1, self.width)
        self._raw.write(array.tobytes())
        self.rows += int(array.shape[0])

    def finish(self) -> None:
        """Write the ``.npy`` file: NumPy's header, then the raw rows."""
        self._raw.close()
        shape = (self.rows,) if self.width is None else (self.rows, self.width)
        header = {"descr": self.dtype.str, "fortran_order": False, "shape": shape}
        raw = self.path.with_suffix(".raw")
        with self.path.open("wb") as out, raw.open("rb") as source:
            np.lib.format.write_array_header_1_0(out, header)
            shutil.copyfileobj(source, out, _COPY_CHUNK)
        raw.unlink()

    def close(self) -> None:
        self._raw.close()


class BundleWriter:
    """Builds a bundle in a scratch directory, then writes it to ``target`` in one go."""

    def __init__(self, scratch: Path, *, dense_dimension: int, late_dimension: int | None) -> None:
        self._dir = Path(tempfile.mkdtemp(prefix="bundle-", dir=scratch))
        (self._dir / "blobs").mkdir()
        (self._dir / "extras").mkdir()
        self._docs = (self._dir / "documents.jsonl").open("w", encoding="utf-8")
        self._chunks = (self._dir / "chunks.jsonl").open("w", encoding="utf-8")
        self._dense = _Column(self._dir / "dense.npy", "<f4", dense_dimension)
        self._indptr = _Column(self._dir / "sparse.indptr.npy", "<i8", None)
        self._indices = _Column(self._dir / "sparse.indices.npy", "<u4", None)
        self._values = _Column(self._dir / "sparse.values.npy", "<f4", None)
        self._late_counts = _Column(self._dir / "late.counts.npy", "<i4", None)
        self._late_rows = _Column(self._dir / "late.rows.npy", "<f2", late_dimension or 1)
        self._late_dimension = late_dimension
        self._nnz = 0
        self._indptr.append([0])
        self.documents = 0
        self.chunks = 0
        self.blobs: set[str] = set()
        self.extras: list[str] = []

    def add_document(self, record: dict[str, Any], points: list[dict[str, Any]]) -> None:
        """One document's record and its points (``id``, ``payload``, ``dense``,
        ``sparse``: (indices, values) or None, ``late``: a float matrix or None)."""
        self._docs.write(json.dumps(record, ensure_ascii=False) + "\n")
        self.documents += 1
        for point in points:
            self._chunks.write(
                json.dumps({"id": point["id"], "payload": point["payload"]}, ensure_ascii=False)
                + "\n"
            )
            self._dense.append(point["dense"])
            sparse = point.get("sparse")
            if sparse is not None:
                indices, values = sparse
                self._indices.append(indices)
                self._values.append(values)
                self._nnz += len(indices)
            self._indptr.append([self._nnz])
            late = point.get("late")
            if late is None or self._late_dimension is None:
                self._late_counts.append([0])
            else:
                rows = np.asarray(late, dtype=np.float32).reshape(-1, self._late_dimension)
                self._late_counts.append([rows.shape[0]])
                self._late_rows.append(rows)
            self.chunks += 1

    def add_blob(self, key: str, data: bytes) -> None:
        """A stored blob (content-addressed: ``key`` is its sha256)."""
        if key in self.blobs:
            return
        (self._dir / "blobs" / key).write_bytes(data)
        self.blobs.add(key)

    def add_extra(self, name: str, data: bytes) -> None:
        """A named extra member (feedback, evaluation)."""
        (self._dir / "extras" / name).write_bytes(data)
        self.extras.append(name)

    def write(self, target: Path, collection: dict[str, Any], manifest: BundleManifest) -> int:
        """Finish every member, checksum it, and write the bundle; returns its bytes."""
        self._docs.close()
        self._chunks.close()
        for column in self._columns():
            column.finish()
        (self._dir / "collection.json").write_text(json.dumps(collection), "utf-8")
        names = ["collection.json", "documents.jsonl", "chunks.jsonl", *_ARRAYS]
        names += [f"blobs/{k}" for k in sorted(self.blobs)]
        names += [f"extras/{n}" for n in self.extras]
        members = {name: _digest(self._dir / name) for name in names}
        manifest = manifest.model_copy(update={"members": members})
        partial = target.with_name(f".{target.name}.partial")
        with partial.open("wb") as raw:
            compressor = zstandard.ZstdCompressor(level=_ZSTD_LEVEL)
            with (
                compressor.stream_writer(raw, closefd=False) as stream,
                tarfile.open(fileobj=stream, mode="w|") as tar,
            ):
                _add_bytes(tar, MANIFEST, manifest.model_dump_json().encode())
                for name in names:
                    tar.add(self._dir / name, arcname=name, recursive=False)
            raw.flush()
        partial.replace(target)  # a reader never sees half a bundle under the final name
        return target.stat().st_size

    def _columns(self) -> list[_Column]:
        return [
            self._dense,
            self._indptr,
            self._indices,
            self._values,
            self._late_counts,
            self._late_rows,
        ]

    def close(self) -> None:
        """Remove the scratch directory (also after a failure)."""
        self._docs.close()
        self._chunks.close()
        for column in self._columns():
            column.close()
        shutil.rmtree(self._dir, ignore_errors=True)


def _digest(path: Path) -> MemberDigest:
    sha = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(_COPY_CHUNK):
            sha.update(block)
    return MemberDigest(sha256=sha.hexdigest(), bytes=path.stat().st_size)


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(data), int(time.time()), 0o644
    tar.addfile(info, io.BytesIO(data))


@dataclass
class BundleContents:
    """A bundle unpacked and verified in a scratch directory (``close`` removes it)."""

    root: Path
    manifest: BundleManifest
    collection: dict[str, Any]
    blobs: list[str] = field(default_factory=list)

    def documents(self) -> Iterator[dict[str, Any]]:
        """The document records, in bundle order."""
        yield from _jsonl(self.root / "documents.jsonl")

    def chunks(self) -> Iterator[dict[str, Any]]:
        """Each chunk's ``id``, ``payload``, ``dense``, ``sparse`` and ``late`` rows."""
        dense = np.load(self.root / "dense.npy", mmap_mode="r")
        indptr = np.load(self.root / "sparse.indptr.npy", mmap_mode="r")
        indices = np.load(self.root / "sparse.indices.npy", mmap_mode="r")
        values = np.load(self.root / "sparse.values.npy", mmap_mode="r")
        counts = np.load(self.root / "late.counts.npy", mmap_mode="r")
        rows = np.load(self.root / "late.rows.npy", mmap_mode="r")
        late_at = 0
        for n, chunk in enumerate(_jsonl(self.root / "chunks.jsonl")):
            if n >= dense.shape[0]:
                raise _bad("chunks.jsonl has more lines than dense.npy has rows")
            lo, hi = int(indptr[n]), int(indptr[n + 1])
            count = int(counts[n])
            yield {
                **chunk,
                "dense": dense[n].tolist(),
                "sparse": (indices[lo:hi].tolist(), values[lo:hi].tolist()) if hi > lo else None,
                "late": np.asarray(rows[late_at : late_at + count], dtype=np.float32)
                if count
                else None,
            }
            late_at += count

    def blob(self, key: str) -> bytes:
        """One stored blob's bytes."""
        return (self.root / "blobs" / key).read_bytes()

    def read_extra(self, name: str) -> bytes | None:
        """An extra member's bytes, or None when the bundle has none by that name."""
        path = self.root / "extras" / name
        return path.read_bytes() if path.is_file() else None

    def close(self) -> None:
        """Remove the scratch directory."""
        shutil.rmtree(self.root, ignore_errors=True)


def _jsonl(path: Path) -> Iterator[dict[str, Any]]:
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield json.loads(line)


def open_bundle(source: Path, scratch: Path, *, max_expanded_bytes: int) -> BundleContents:
    """Unpack ``source`` into ``scratch`` and check every member against the manifest.

    Raises:
        InvalidInput: ``bad_bundle`` (truncated, corrupted, foreign or of an unknown
            format version) or ``bundle_too_large`` (expands past ``max_expanded_bytes``).
    """
    root = Path(tempfile.mkdtemp(prefix="restore-", dir=scratch))
    try:
        with source.open("rb") as raw:
            manifest = _unpack(raw, root, max_expanded_bytes)
        collection = _collection(root / "collection.json")
        blobs = [n.removeprefix("blobs/") for n in manifest.members if n.startswith("blobs/")]
        return BundleContents(root, manifest, collection, blobs)
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise


def _collection(path: Path) -> dict[str, Any]:
    try:
        collection = json.loads(path.read_text("utf-8"))
    except ValueError as exc:
        raise _bad("collection.json is not JSON") from exc
    if not isinstance(collection, dict) or "record" not in collection:
        raise _bad("collection.json holds no collection record")
    return collection


def _unpack(raw: IO[bytes], root: Path, max_expanded_bytes: int) -> BundleManifest:
    try:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, closefd=False)
        with reader, tarfile.open(fileobj=reader, mode="r|") as tar:
            return _members(tar, root, max_expanded_bytes)
    except InvalidInput:
        raise
    except (zstandard.ZstdError, tarfile.TarError, EOFError, OSError, ValueError) as exc:
        raise _bad(f"the archive is truncated or corrupted ({type(exc).__name__})") from exc


def _members(tar: tarfile.TarFile, root: Path, max_expanded_bytes: int) -> BundleManifest:
    first = tar.next()
    if first is None or first.name != MANIFEST or not first.isfile():
        raise _bad("it does not start with a manifest")
    if first.size > _MAX_MANIFEST_BYTES:
        raise _bad("the manifest is too large")
    manifest = _manifest(_read(tar, first))
    declared = sum(m.bytes for m in manifest.members.values())
    if declared > max_expanded_bytes:
        raise InvalidInput(
            f"the bundle expands to {declared} bytes; the limit is {max_expanded_bytes} "
            "(SIEVE_BUNDLE_MAX_EXPANDED_BYTES)",
            code="bundle_too_large",
        )
    seen: set[str] = set()
    while (info := tar.next()) is not None:
        digest = manifest.members.get(info.name)
        if digest is None or not info.isfile() or info.name in seen:
            raise _bad(f"unexpected member {info.name!r}")
        if info.size != digest.bytes:
            raise _bad(
                f"member {info.name!r} has {info.size} bytes, the manifest says {digest.bytes}"
            )
        seen.add(info.name)
        target = root / info.name
        target.parent.mkdir(parents=True, exist_ok=True)
        sha = hashlib.sha256()
        handle = tar.extractfile(info)
        assert handle is not None  # a regular file
        with handle, target.open("wb") as out:
            while block := handle.read(_COPY_CHUNK):
                sha.update(block)
                out.write(block)
        if sha.hexdigest() != digest.sha256:
            raise _bad(f"member {info.name!r} fails its checksum")
    missing = set(manifest.members) - seen
    if missing:
        raise _bad(f"members missing (truncated?): {sorted(missing)[:5]}")
    return manifest


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(info)
    if handle is None:
        raise _bad(f"member {info.name!r} is not a file")
    with handle:
        return handle.read()


def _manifest(data: bytes) -> BundleManifest:
    try:
        raw = json.loads(data)
    except ValueError as exc:
        raise _bad("the manifest is not JSON") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise _bad("it is not a Sieve collection bundle")
    if raw.get("format_version") != FORMAT_VERSION:
        raise _bad(
            f"format version {raw.get('format_version')!r}; this Sieve reads version "
            f"{FORMAT_VERSION}"
        )
    try:
        manifest = BundleManifest.model_validate(raw)
    except ValidationError as exc:
        raise _bad("the manifest is malformed") from exc
    required = {"collection.json", "documents.jsonl", "chunks.jsonl", *_ARRAYS}
    if not required <= set(manifest.members):
        raise _bad("the manifest does not list every required member")
    for name in manifest.members:
        parts = Path(name).parts
        if name.startswith("/") or ".." in parts or len(parts) > 2:
            raise _bad(f"unsafe member name {name!r}")
    return manifest
