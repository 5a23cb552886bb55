"""Expand zip and tar(.gz/.bz2/.xz) uploads safely: bombs, unsafe names and links are refused."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import re
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import IO

from core.errors import PayloadTooLarge
from core.ids import document_id_problem
from ingest.detect import ARCHIVE_TYPES, FileType, detect_type
from ingest.documents import FailureReason, ParseError, ParseFailure
from ingest.limits import IngestLimits

__all__ = [
    "ArchiveMember",
    "ArchiveRefused",
    "ExpansionBudget",
    "ExpansionRefused",
    "ManifestEntry",
    "check_zip_directory",
    "is_junk_path",
    "iter_archive",
    "safe_member_path",
    "scan_archive",
    "stream_archive",
]

_READ_SIZE = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")
_JUNK_NAMES = frozenset({"Thumbs.db", "desktop.ini", "__MACOSX"})
_S_IFMT, _S_IFLNK = 0o170000, 0o120000
# Unpacking stops for the whole upload on these; other failures concern one member only.
_BUDGET_REASONS = frozenset(
    {
        FailureReason.ARCHIVE_TOO_MANY_FILES,
        FailureReason.ARCHIVE_TOO_LARGE,
        FailureReason.ARCHIVE_RATIO_EXCEEDED,
    }
)


@dataclass(frozen=True)
class ArchiveMember:
    """One regular file from an archive: its normalised path (nested: ``inner.zip/a.txt``)."""

    path: str
    data: bytes


def safe_member_path(name: str) -> str | None:
    """Return ``name`` as a clean relative POSIX path, or None if it could escape the root."""
    if not name or "\x00" in name:
        return None
    unified = name.replace("\\", "/")
    if unified.startswith("/") or _DRIVE.match(unified):
        return None
    parts = [part for part in unified.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def is_junk_path(path: str) -> bool:
    """True for OS litter and hidden files (``__MACOSX/``, ``.DS_Store``, ``.git/``)."""
    parts = PurePosixPath(path).parts
    return any(part in _JUNK_NAMES or part.startswith(".") for part in parts)


def check_zip_directory(zf: zipfile.ZipFile, size: int, limits: IngestLimits) -> None:
    """Refuse a zip whose central directory declares too many, too large or too packed files.

    Raises:
        ParseError: ``archive_too_many_files``, ``archive_too_large`` or ``archive_ratio_exceeded``.
    """
    infos = zf.infolist()
    if len(infos) > limits.max_archive_members:
        raise ParseError(
            FailureReason.ARCHIVE_TOO_MANY_FILES,
            f"{len(infos)} entries; the limit is {limits.max_archive_members}",
        )
    declared = sum(info.file_size for info in infos)
    if declared > limits.max_archive_total_bytes:
        raise ParseError(
            FailureReason.ARCHIVE_TOO_LARGE,
            f"declares {declared} bytes; the limit is {limits.max_archive_total_bytes}",
        )
    if declared > limits.ratio_grace_bytes and declared > size * limits.max_compression_ratio:
        raise ParseError(
            FailureReason.ARCHIVE_RATIO_EXCEEDED,
            f"expands {declared / max(size, 1):.0f}x; limit {limits.max_compression_ratio:g}x",
        )


def iter_archive(
    data: bytes, source: str, limits: IngestLimits
) -> Iterator[ArchiveMember | ParseFailure]:
    """Yield the regular files of an archive upload, or a failure per refused member.

    Junk and directories are skipped silently. An archive that breaks a budget of the whole
    upload (too many files, too large, bomb ratio) is refused whole: it yields that one
    failure (``source`` the archive itself) and none of its members, so nothing of it is
    ever half-queued. Members are therefore yielded only once the whole archive was read.
    """
    try:
        members = list(stream_archive(data, source, limits))
    except ArchiveRefused as exc:
        yield ParseFailure(source=source, reason=FailureReason(exc.code), message=exc.detail)
        return
    yield from members


class ExpansionRefused(PayloadTooLarge):
    """All archives of one request together expand past its ``ExpansionBudget``."""


@dataclass
class ExpansionBudget:
    """One budget for every archive of a request: members and bytes they expand to, summed.

    Each archive keeps its own limits too (``IngestLimits``: members, bytes, ratio); this
    one stops three archives each just under them from adding up in one request.
    """

    max_members: int
    max_bytes: int
    members: int = 0
    bytes_out: int = 0

    def add_members(self, count: int) -> None:
        """Charge ``count`` archive entries.

        Raises:
            ExpansionRefused: past ``max_members`` (code ``request_too_many_members``).
        """
        self.members += count
        if self.members > self.max_members:
            raise ExpansionRefused(
                f"the archives of this request hold more than {self.max_members} entries",
                code="request_too_many_members",
            )

    def add_bytes(self, count: int) -> None:
        """Charge ``count`` expanded bytes.

        Raises:
            ExpansionRefused: past ``max_bytes`` (code ``request_expansion_too_large``).
        """
        self.bytes_out += count
        if self.bytes_out > self.max_bytes:
            raise ExpansionRefused(
                f"the archives of this request expand to more than {self.max_bytes} bytes",
                code="request_expansion_too_large",
            )


def stream_archive(
    data: bytes, source: str, limits: IngestLimits, *, budget: ExpansionBudget | None = None
) -> Iterator[ArchiveMember | ParseFailure]:
    """Like ``iter_archive`` but lazy: members come as they are read, one at a time.

    For a consumer that stores each member as it comes (the API writing an upload's members
    to the blob store), or that checked the archive first (``scan_archive``) and expands it
    again without holding every member at once. ``budget`` is shared by every archive of
    one request; members and bytes are charged to it as well as to this archive's limits.

    Raises:
        ArchiveRefused: a budget of this archive broke (its ``code`` is the reason);
            members yielded before belong to a refused archive.
        ExpansionRefused: ``budget`` broke; the request is over its limit.
    """
    own = _Budget(limits=limits, upload_size=len(data), shared=budget)
    try:
        yield from _expand(data, source, "", 1, own)
    except _BudgetExceeded as exc:
        raise ArchiveRefused(exc.message, code=exc.reason.value) from exc


class ArchiveRefused(PayloadTooLarge):
    """A budget error that keeps its own message apart (``detail``) for the failure value."""

    def __init__(self, detail: str, *, code: str) -> None:
        super().__init__(f"archive refused: {detail}", code=code)
        self.detail = detail


@dataclass(frozen=True)
class ManifestEntry:
    """One member an archive would yield: its path, size and content hash, or its failure."""

    path: str
    size: int = 0
    sha256: str | None = None
    failure: ParseFailure | None = None


def scan_archive(data: bytes, source: str, limits: IngestLimits) -> list[ManifestEntry]:
    """Check a whole archive against every budget without keeping its members' bytes.

    What an API needs to accept an archive as one blob (and let a worker expand it with
    ``iter_archive``): the same members, sizes and content hashes, in order.

    Raises:
        ArchiveRefused: as ``stream_archive``; nothing of the archive is accepted then.
    """
    out: list[ManifestEntry] = []
    for item in stream_archive(data, source, limits):
        if isinstance(item, ParseFailure):
            out.append(ManifestEntry(path=item.source, failure=item))
        else:
            digest = hashlib.sha256(item.data).hexdigest()
            out.append(ManifestEntry(path=item.path, size=len(item.data), sha256=digest))
    return out


class _BudgetExceeded(ParseError):
    """The whole upload is over a limit: stop unpacking everything."""


# Tar framing per member: a 512-byte header, padding to 512, and pax headers for long
# names; plus the end-of-archive blocks and the last record's padding. Only member payloads
# count toward the ratio (a 10k-file tar of small files is mostly headers); framing beyond
# this allowance is itself a bomb.
_FRAMING_PER_MEMBER = 4096
_FRAMING_BASE = 64 * 1024


@dataclass
class _Budget:
    """Counts members and bytes actually produced across the upload, nesting included."""

    limits: IngestLimits
    upload_size: int
    members: int = 0
    bytes_out: int = 0
    raw_out: int = 0
    shared: ExpansionBudget | None = None

    def add_raw(self, count: int) -> None:
        """Charge decompressed tar stream bytes (payload and framing together)."""
        self.raw_out += count
        framing = self.raw_out - self.bytes_out
        allowance = _FRAMING_BASE + _FRAMING_PER_MEMBER * (self.members + 1)
        if framing > allowance + self.limits.ratio_grace_bytes:
            raise _BudgetExceeded(
                FailureReason.ARCHIVE_RATIO_EXCEEDED,
                "tar headers and padding expand far beyond the members they frame",
            )

    def add_members(self, count: int) -> None:
        self.members += count
        if self.shared is not None:
            self.shared.add_members(count)
        if self.members > self.limits.max_archive_members:
            raise _BudgetExceeded(
                FailureReason.ARCHIVE_TOO_MANY_FILES,
                f"more than {self.limits.max_archive_members} archive entries",
            )

    def add_bytes(self, count: int) -> None:
        self.bytes_out += count
        if self.shared is not None:
            self.shared.add_bytes(count)
        limits = self.limits
        if self.bytes_out > limits.max_archive_total_bytes:
            raise _BudgetExceeded(
                FailureReason.ARCHIVE_TOO_LARGE,
                f"expands to more than {limits.max_archive_total_bytes} bytes",
            )
        if (
            self.bytes_out > limits.ratio_grace_bytes
            and self.bytes_out > self.upload_size * limits.max_compression_ratio
        ):
            raise _BudgetExceeded(
                FailureReason.ARCHIVE_RATIO_EXCEEDED,
                f"expands more than {limits.max_compression_ratio:g}x its size",
            )


def _expand(
    data: bytes, source: str, prefix: str, depth: int, budget: _Budget
) -> Iterator[ArchiveMember | ParseFailure]:
    kind = detect_type(data, source).type
    try:
        if kind is FileType.ZIP:
            members = _zip_members(data, prefix, budget)
        elif kind in ARCHIVE_TYPES:
            members = _tar_members(data, kind, prefix, budget)
        else:
            yield ParseFailure(
                source=source, reason=FailureReason.UNSUPPORTED_TYPE, message="not an archive"
            )
            return
        for item in members:
            if isinstance(item, ParseFailure) or detect_type(item.data).type not in ARCHIVE_TYPES:
                yield item
            elif depth < budget.limits.max_archive_depth:
                yield from _expand(item.data, item.path, item.path + "/", depth + 1, budget)
            else:
                yield ParseFailure(
                    source=item.path,
                    reason=FailureReason.NESTED_ARCHIVE,
                    message="archives inside archives are not expanded",
                )
    except _BudgetExceeded:
        raise
    except ParseError as exc:
        if exc.reason in _BUDGET_REASONS:  # a zip's directory declares too much
            raise _BudgetExceeded(exc.reason, exc.message) from exc
        yield ParseFailure(source=source, reason=exc.reason, message=exc.message)


def _member_failure(path: str, reason: FailureReason, message: str) -> ParseFailure:
    return ParseFailure(source=path, reason=reason, message=message)


def _zip_members(
    data: bytes, prefix: str, budget: _Budget
) -> Iterator[ArchiveMember | ParseFailure]:
    limits = budget.limits
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable zip archive: {exc}") from exc
    with zf:
        check_zip_directory(zf, len(data), limits)
        budget.add_members(len(zf.infolist()))
        for info in zf.infolist():
            if info.is_dir():
                continue
            path = safe_member_path(info.filename)
            if path is None:
                yield _member_failure(
                    prefix + info.filename, FailureReason.UNSAFE_PATH, "path escapes the archive"
                )
                continue
            path = prefix + path
            if is_junk_path(path):
                continue
            if (problem := document_id_problem(path)) is not None:
                yield _member_failure(_clip(path), FailureReason.UNSAFE_PATH, problem)
            elif (info.external_attr >> 16) & _S_IFMT == _S_IFLNK:
                yield _member_failure(path, FailureReason.UNSAFE_PATH, "symbolic link")
            elif info.flag_bits & 0x1:
                yield _member_failure(path, FailureReason.CORRUPT_FILE, "encrypted member")
            elif info.file_size > limits.max_file_bytes:
                yield _too_large(path, info.file_size, limits)
            elif (
                info.file_size > limits.ratio_grace_bytes
                and info.file_size > max(info.compress_size, 1) * limits.max_compression_ratio
            ):
                yield _member_failure(
                    path,
                    FailureReason.ARCHIVE_RATIO_EXCEEDED,
                    f"expands {info.file_size / max(info.compress_size, 1):.0f}x",
                )
            else:
                yield _read_zip_member(zf, info, path, budget)


def _read_zip_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: str, budget: _Budget
) -> ArchiveMember | ParseFailure:
    try:
        with zf.open(info) as stream:
            # Declared sizes can lie: count what actually comes out.
            data = _read_bounded(
                stream, path, min(info.file_size, budget.limits.max_file_bytes), budget
            )
    except (zipfile.BadZipFile, zlib.error, NotImplementedError, OSError, EOFError) as exc:
        return _member_failure(path, FailureReason.CORRUPT_FILE, f"unreadable member: {exc}")
    if isinstance(data, ParseFailure):
        return data
    return ArchiveMember(path=path, data=data)


def _read_bounded(
    stream: IO[bytes], path: str, limit: int, budget: _Budget | None
) -> bytes | ParseFailure:
    """Read at most ``limit`` bytes; ``budget`` None when the stream below already charges it."""
    out = bytearray()
    while chunk := stream.read(_READ_SIZE):
        if budget is not None:
            budget.add_bytes(len(chunk))
        out += chunk
        if len(out) > limit:
            return _member_failure(
                path, FailureReason.TOO_LARGE, f"member produced more than {limit} bytes"
            )
    return bytes(out)


def _clip(path: str) -> str:
    """A refused name short enough to report (it becomes the failed document's id)."""
    return path if len(path) <= 200 else path[:200] + "..."


def _too_large(path: str, size: int, limits: IngestLimits) -> ParseFailure:
    return _member_failure(
        path, FailureReason.TOO_LARGE, f"{size} bytes; the limit is {limits.max_file_bytes}"
    )


class _CountingReader(io.RawIOBase):
    """Feeds tarfile a decompressed stream and charges every byte to the upload's budget."""

    def __init__(self, inner: io.BufferedIOBase, budget: _Budget) -> None:
        self._inner = inner
        self._budget = budget

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        self._budget.add_raw(len(data))
        buffer[: len(data)] = data
        return len(data)


def _open_stream(data: bytes, kind: FileType) -> io.BufferedIOBase:
    raw = io.BytesIO(data)
    if kind is FileType.GZIP:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if kind is FileType.BZIP2:
        return bz2.BZ2File(raw, mode="rb")
    if kind is FileType.XZ:
        return lzma.LZMAFile(raw, mode="rb")
    return raw


def _tar_members(
    data: bytes, kind: FileType, prefix: str, budget: _Budget
) -> Iterator[ArchiveMember | ParseFailure]:
    stream = io.BufferedReader(_CountingReader(_open_stream(data, kind), budget), _READ_SIZE)
    try:
        # Stream mode ("r|"): one forward pass, never seeks, never loads the member index.
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for member in tf:
                budget.add_members(1)
                yield from _tar_member(tf, member, prefix, budget)
    except tarfile.ReadError as exc:
        if kind is FileType.TAR:
            raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable tar archive: {exc}") from exc
        raise ParseError(
            FailureReason.UNSUPPORTED_TYPE, "compressed file that is not a tar archive"
        ) from exc
    except (tarfile.TarError, OSError, EOFError, zlib.error, lzma.LZMAError) as exc:
        raise ParseError(FailureReason.CORRUPT_FILE, f"unreadable archive: {exc}") from exc


def _tar_member(
    tf: tarfile.TarFile,
    member: tarfile.TarInfo,
    prefix: str,
    budget: _Budget,
) -> Iterator[ArchiveMember | ParseFailure]:
    limits = budget.limits
    if member.isdir():
        return
    path = safe_member_path(member.name)
    if path is None:
        yield _member_failure(
            prefix + member.name, FailureReason.UNSAFE_PATH, "path escapes the archive"
        )
        return
    path = prefix + path
    if is_junk_path(path):
        return
    if (problem := document_id_problem(path)) is not None:
        yield _member_failure(_clip(path), FailureReason.UNSAFE_PATH, problem)
    elif member.issym() or member.islnk():
        yield _member_failure(path, FailureReason.UNSAFE_PATH, "symbolic or hard link")
    elif not member.isreg():
        yield _member_failure(path, FailureReason.UNSUPPORTED_TYPE, "device, fifo or special file")
    elif member.size > limits.max_file_bytes:
        yield _too_large(path, member.size, limits)
    else:
        stream = tf.extractfile(member)
        if stream is None:
            return
        # Only the payload counts toward the ratio; the raw stream is charged for framing.
        data = _read_bounded(stream, path, limits.max_file_bytes, budget)
        yield data if isinstance(data, ParseFailure) else ArchiveMember(path=path, data=data)
