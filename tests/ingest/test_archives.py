"""Archive uploads: members parse one by one; bombs, unsafe names and links are refused."""

from __future__ import annotations

import gzip
import io
import tarfile
import zipfile

import pytest

from ingest import (
    ArchiveMember,
    ExtractedDocument,
    FailureReason,
    IngestLimits,
    ParseFailure,
    iter_archive,
    parse_upload,
    safe_member_path,
)
from ingest.archives import ExpansionBudget, ExpansionRefused, stream_archive
from tests.ingest.samples import make_docx, make_pdf, make_tar, make_zip

MIB = 1024 * 1024


def _by_source(
    items: list[ArchiveMember | ParseFailure],
) -> dict[str, ArchiveMember | ParseFailure]:
    keys = [item.path if isinstance(item, ArchiveMember) else item.source for item in items]
    assert len(keys) == len(set(keys)), keys
    return dict(zip(keys, items, strict=True))


def _reason(item: object) -> FailureReason:
    assert isinstance(item, ParseFailure), item
    return item.reason


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("docs/a.txt", "docs/a.txt"),
        ("./docs//a.txt", "docs/a.txt"),
        ("../evil.txt", None),
        ("docs/../../evil.txt", None),
        ("docs/../a.txt", None),
        ("/etc/passwd", None),
        ("\\\\server\\share\\x.txt", None),
        ("C:\\Windows\\win.ini", None),
        ("c:evil.txt", None),
        ("docs\\..\\..\\evil.txt", None),
        ("a\x00b.txt", None),
        ("", None),
    ],
)
def test_safe_member_path(name: str, expected: str | None) -> None:
    assert safe_member_path(name) == expected


def test_zip_members_parse_and_bad_ones_fail_alone(limits: IngestLimits) -> None:
    upload = make_zip(
        {
            "docs/readme.md": b"# Read me\n\nHello.\n",
            "docs/report.pdf": make_pdf([["PDF text here."]]),
            "docs/report.docx": make_docx(),
            "../evil.txt": b"escape attempt",
            "/etc/passwd": b"root:x:0:0",
            "__MACOSX/docs/._readme.md": b"\x00\x05\x16\x07junk",
            "docs/.DS_Store": b"\x00\x00\x00\x01Bud1",
            "docs/empty.txt": b"",
            "docs/image.png": b"\x89PNG\r\n\x1a\n" + b"\x00" * 32,
            "docs/": b"",
        }
    )
    outcomes = list(parse_upload(upload, "batch.zip", limits))
    by_source = {o.source: o for o in outcomes}
    assert set(by_source) == {
        "docs/readme.md",
        "docs/report.pdf",
        "docs/report.docx",
        "../evil.txt",
        "/etc/passwd",
        "docs/empty.txt",
        "docs/image.png",
    }
    for good in ("docs/readme.md", "docs/report.pdf", "docs/report.docx"):
        assert isinstance(by_source[good], ExtractedDocument), by_source[good]
    assert _reason(by_source["../evil.txt"]) is FailureReason.UNSAFE_PATH
    assert _reason(by_source["/etc/passwd"]) is FailureReason.UNSAFE_PATH
    assert _reason(by_source["docs/empty.txt"]) is FailureReason.EMPTY_DOCUMENT
    assert _reason(by_source["docs/image.png"]) is FailureReason.UNSUPPORTED_TYPE


def test_zip_bomb_by_ratio_is_refused(limits: IngestLimits) -> None:
    bomb = make_zip({"zeros.txt": b"\x00" * (20 * MIB)})
    assert len(bomb) < 100_000  # it really is a bomb: >200x
    items = list(iter_archive(bomb, "bomb.zip", limits))
    assert [_reason(i) for i in items] == [FailureReason.ARCHIVE_RATIO_EXCEEDED]
    assert isinstance(items[0], ParseFailure)
    assert items[0].source == "bomb.zip"


def test_zip_member_over_the_byte_limit_fails_alone() -> None:
    limits = IngestLimits(max_file_bytes=1000)
    upload = make_zip({"big.txt": b"word " * 400, "small.txt": b"fine"})
    by_source = _by_source(list(iter_archive(upload, "u.zip", limits)))
    assert _reason(by_source["big.txt"]) is FailureReason.TOO_LARGE
    assert isinstance(by_source["small.txt"], ArchiveMember)


def test_zip_member_count_bomb_is_refused() -> None:
    limits = IngestLimits(max_archive_members=50)
    upload = make_zip({f"f{i}.txt": b"x" for i in range(51)})
    items = list(iter_archive(upload, "many.zip", limits))
    assert [_reason(i) for i in items] == [FailureReason.ARCHIVE_TOO_MANY_FILES]


def test_zip_total_size_limit_is_enforced() -> None:
    limits = IngestLimits(max_archive_total_bytes=10_000)
    upload = make_zip({f"f{i}.txt": bytes(range(256)) * 16 for i in range(4)})  # 4 x 4 KiB
    items = list(iter_archive(upload, "big.zip", limits))
    assert [_reason(i) for i in items] == [FailureReason.ARCHIVE_TOO_LARGE]


def _lie_about_size(data: bytes, name: bytes, real: int, claimed: int) -> bytes:
    """Rewrite a member's declared size in both the local header and the central directory."""
    out = bytearray(data)
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        at = out.find(signature)
        while at >= 0:
            name_at = at + (30 if signature == b"PK\x03\x04" else 46)
            if out[name_at : name_at + len(name)] == name:
                assert int.from_bytes(out[at + size_at : at + size_at + 4], "little") == real
                out[at + size_at : at + size_at + 4] = claimed.to_bytes(4, "little")
            at = out.find(signature, at + 4)
    return bytes(out)


def test_zip_whose_declared_size_lies_is_not_trusted(limits: IngestLimits) -> None:
    real = 8 * MIB
    honest = make_zip({"lies.txt": b"a" * real, "ok.txt": b"fine"})
    lying = _lie_about_size(honest, b"lies.txt", real, 1000)
    with zipfile.ZipFile(io.BytesIO(lying)) as zf:
        assert zf.getinfo("lies.txt").file_size == 1000  # the directory now claims 1000 bytes
    by_source = _by_source(list(iter_archive(lying, "liar.zip", limits)))
    lied = by_source["lies.txt"]
    # Either way, the 8 MiB behind the lie never comes out as a member.
    assert not (isinstance(lied, ArchiveMember) and len(lied.data) > 1000)
    assert _reason(lied) in {FailureReason.CORRUPT_FILE, FailureReason.TOO_LARGE}
    assert isinstance(by_source["ok.txt"], ArchiveMember)


def test_corrupt_zip_fails_as_a_whole(limits: IngestLimits) -> None:
    upload = make_zip({"a.txt": b"hello"})
    items = list(iter_archive(upload[:-10], "cut.zip", limits))
    assert [_reason(i) for i in items] == [FailureReason.CORRUPT_FILE]


def _link(name: str, target: str, kind: bytes) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


def test_tar_gz_refuses_links_devices_and_escaping_names(limits: IngestLimits) -> None:
    device = tarfile.TarInfo("dev/null")
    device.type = tarfile.CHRTYPE
    directory = tarfile.TarInfo("docs")
    directory.type = tarfile.DIRTYPE
    upload = make_tar(
        [
            directory,
            ("docs/a.txt", b"first document"),
            _link("docs/passwd", "/etc/passwd", tarfile.SYMTYPE),
            _link("docs/hard", "docs/a.txt", tarfile.LNKTYPE),
            device,
            ("../evil.txt", b"escape"),
            ("/abs.txt", b"absolute"),
            ("docs/._a.txt", b"apple double"),
            ("docs/b.md", b"# B\n\nsecond document"),
        ]
    )
    by_source = _by_source(list(iter_archive(upload, "u.tar.gz", limits)))
    assert set(by_source) == {
        "docs/a.txt",
        "docs/passwd",
        "docs/hard",
        "dev/null",
        "../evil.txt",
        "/abs.txt",
        "docs/b.md",
    }
    assert isinstance(by_source["docs/a.txt"], ArchiveMember)
    assert by_source["docs/a.txt"].data == b"first document"
    assert isinstance(by_source["docs/b.md"], ArchiveMember)
    for unsafe in ("docs/passwd", "docs/hard", "../evil.txt", "/abs.txt"):
        assert _reason(by_source[unsafe]) is FailureReason.UNSAFE_PATH
    assert _reason(by_source["dev/null"]) is FailureReason.UNSUPPORTED_TYPE


@pytest.mark.parametrize("mode", ["w", "w:gz", "w:bz2", "w:xz"])
def test_every_tar_compression_expands(limits: IngestLimits, mode: str) -> None:
    upload = make_tar([("a.txt", b"alpha"), ("b.txt", b"beta")], mode=mode)
    items = list(iter_archive(upload, "u.tar", limits))
    assert [(i.path, i.data) for i in items if isinstance(i, ArchiveMember)] == [
        ("a.txt", b"alpha"),
        ("b.txt", b"beta"),
    ]


def test_tar_gz_bomb_is_stopped_while_streaming(limits: IngestLimits) -> None:
    # The tar header declares the true size; the gzip layer hides it from a size-only check.
    bomb = make_tar([("zeros.txt", b"\x00" * (30 * MIB))])
    assert len(bomb) < 100_000
    items = list(iter_archive(bomb, "bomb.tar.gz", limits))
    assert [_reason(i) for i in items] == [FailureReason.ARCHIVE_RATIO_EXCEEDED]


def test_tar_member_count_bomb_is_refused() -> None:
    limits = IngestLimits(max_archive_members=20)
    upload = make_tar([(f"f{i}.txt", b"x") for i in range(40)])
    # Refused whole: the 20 members read before the count ran out are not yielded either.
    items = list(iter_archive(upload, "many.tar.gz", limits))
    assert [_reason(i) for i in items] == [FailureReason.ARCHIVE_TOO_MANY_FILES]
    assert isinstance(items[0], ParseFailure)
    assert items[0].source == "many.tar.gz"


def test_gzip_of_a_single_file_is_not_an_archive(limits: IngestLimits) -> None:
    items = list(iter_archive(gzip.compress(b"just text\n" * 100), "notes.txt.gz", limits))
    assert [_reason(i) for i in items] == [FailureReason.UNSUPPORTED_TYPE]


def test_nested_archives_are_refused_by_default_and_expand_when_allowed(
    limits: IngestLimits,
) -> None:
    inner = make_zip({"inner.txt": b"inner text"})
    upload = make_zip({"outer.txt": b"outer text", "sub/inner.zip": inner})
    by_source = _by_source(list(iter_archive(upload, "u.zip", limits)))
    assert isinstance(by_source["outer.txt"], ArchiveMember)
    assert _reason(by_source["sub/inner.zip"]) is FailureReason.NESTED_ARCHIVE
    deeper = IngestLimits(max_archive_depth=2)
    by_source = _by_source(list(iter_archive(upload, "u.zip", deeper)))
    assert isinstance(by_source["sub/inner.zip/inner.txt"], ArchiveMember)


def test_archives_are_not_expanded_when_depth_is_zero() -> None:
    upload = make_zip({"a.txt": b"text"})
    outcomes = list(parse_upload(upload, "u.zip", IngestLimits(max_archive_depth=0)))
    assert [_reason(o) for o in outcomes] == [FailureReason.UNSUPPORTED_TYPE]


def test_single_file_upload_is_one_outcome(limits: IngestLimits) -> None:
    outcomes = list(parse_upload(b"plain text", "a.txt", limits, metadata={"lang": "en"}))
    assert len(outcomes) == 1
    assert isinstance(outcomes[0], ExtractedDocument)
    assert outcomes[0].metadata == {"lang": "en"}


def test_a_10k_file_tar_gz_counts_only_member_payloads_toward_the_ratio() -> None:
    # ~0.5 MB of payload in ~10 MB of tar framing, gzipped to ~90 KB: counted with its
    # headers it would be a 110x "bomb"; by payload it is 6x and every member comes out.
    members: list[tarfile.TarInfo | tuple[str, bytes]] = [
        (f"docs/f{i:05d}.txt", f"document {i}: recalled passages.\n".encode())
        for i in range(10_000)
    ]
    upload = make_tar(members)
    limits = IngestLimits()
    framed = 512 * 2 * len(members)
    assert framed > len(upload) * limits.max_compression_ratio
    items = list(iter_archive(upload, "many.tar.gz", limits))
    assert len(items) == 10_000
    assert all(isinstance(i, ArchiveMember) for i in items)


def test_an_archive_over_the_ratio_is_refused_whole_with_its_good_members() -> None:
    members = [(f"f{i}.txt", b"fine text") for i in range(100)]
    upload = make_tar([*members, ("zeros.txt", b"\x00" * (40 * MIB))])
    items = list(iter_archive(upload, "mixed.tar.gz", IngestLimits()))
    assert [_reason(i) for i in items] == [FailureReason.ARCHIVE_RATIO_EXCEEDED]


def test_the_archives_of_one_request_share_one_budget() -> None:
    limits = IngestLimits(max_archive_members=10, max_archive_total_bytes=10 * MIB)
    text = b"plain text member\n" * 100
    upload = make_tar([(f"d/{i}.txt", text) for i in range(6)])
    budget = ExpansionBudget(max_members=10, max_bytes=10 * MIB)
    first = list(stream_archive(upload, "one.tar.gz", limits, budget=budget))
    assert len(first) == 6
    assert budget.members == 6
    with pytest.raises(ExpansionRefused) as refused:
        list(stream_archive(upload, "two.tar.gz", limits, budget=budget))
    assert refused.value.code == "request_too_many_members"
    # Alone, each archive is within its own limits.
    assert len(list(stream_archive(upload, "two.tar.gz", limits))) == 6
    by_bytes = ExpansionBudget(max_members=100, max_bytes=len(text) * 8)
    list(stream_archive(upload, "one.tar.gz", limits, budget=by_bytes))
    with pytest.raises(ExpansionRefused, match="expand to more than") as refused:
        list(stream_archive(upload, "two.tar.gz", limits, budget=by_bytes))
    assert refused.value.code == "request_expansion_too_large"
