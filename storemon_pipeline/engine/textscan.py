"""The bytes of a feed file before DuckDB reads them (docs/semantics.md §1.3).

DuckDB's CSV reader refuses a whole file for one line it cannot take (a NUL byte, bytes that
are not UTF-8, lines ending both in LF and CRLF), drops some (a line of NULs, a 50 MB line) and
fails on others. So every file is scanned once, in fixed-size chunks and without a Python loop
per line, while its SHA-256 is computed: a clean file (almost all of them) goes to DuckDB as it
is. Only a file with a hostile line is read a second time and copied with its line ends made LF
and its hostile lines blanked (the line numbers stay), beside a small CSV of the blanked lines'
(line, reason, raw) that joins the quarantine.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO

import numpy as np

# A valid row has a few hundred bytes at most; a line longer than this is quarantined whole.
MAX_LINE_BYTES = 64 * 2**10
# How much of a hostile line the quarantine keeps (escaped): never a 50 MB cell.
RAW_KEPT_BYTES = 1024
CHUNK_BYTES = 4 * 2**20

# Reasons of the lines DuckDB is never given (docs/semantics.md §1.3), in the order they apply.
LINE_TOO_LONG = "line_too_long"
CONTROL_CHARACTERS = "control_characters"
INVALID_ENCODING = "invalid_encoding"

# Bytes a line may hold: not the control characters below 0x20 (but TAB; CR and LF end lines)
# nor DEL. ``bytes.translate(None, _TEXT)`` leaves only the others, in C.
_TEXT = bytes(b for b in range(256) if (b >= 0x20 and b != 0x7F) or b in (0x09, 0x0A, 0x0D))
_ASCII_TEXT = bytes(b for b in _TEXT if b < 0x80)
_CONTROL_ESCAPES = {c: f"\\x{c:02x}" for c in (*range(0x20), 0x7F) if c != 0x09}


class UnreadableFileError(ValueError):
    """Bytes that are no file of text at all: a .gz that is not gzip, or cut short."""


class TextTooLargeError(ValueError):
    """A compressed file whose text is larger than the limit on files."""

    def __init__(self, text_bytes: int) -> None:
        super().__init__(f"its text has more than {text_bytes} bytes")
        self.text_bytes = text_bytes


def is_gzip(path: Path) -> bool:
    return path.name.endswith(".gz")


def _inflate(raw: Iterator[bytes], chunk_bytes: int) -> Iterator[bytes]:
    """The text of gzip data, in pieces of at most ``chunk_bytes`` whatever the ratio (a
    decompression bomb stays bounded), members one after another as gzip allows."""
    inflater = zlib.decompressobj(wbits=31)
    started = False
    for data in raw:
        while data:
            started = True
            try:
                piece = inflater.decompress(data, chunk_bytes)
            except zlib.error as exc:
                raise UnreadableFileError(f"not gzip data: {exc}") from None
            if piece:
                yield piece
            if inflater.eof:  # a member ended: what follows is the next one
                data = inflater.unused_data
                inflater = zlib.decompressobj(wbits=31)
                started = False
            else:
                data = inflater.unconsumed_tail
    if started:
        raise UnreadableFileError("the gzip data is cut short")


def _escaped(line: bytes) -> str:
    """A line as text safe to keep and print: bytes that are not UTF-8 as ``\\xNN``, control
    characters as ``\\xNN``, cut at RAW_KEPT_BYTES with its length said."""
    text = line[:RAW_KEPT_BYTES].decode("utf-8", "backslashreplace").translate(_CONTROL_ESCAPES)
    if len(line) > RAW_KEPT_BYTES:
        text += f"… ({len(line):,} bytes)"
    return text


def hostile_reason(line: bytes, max_line_bytes: int) -> str | None:
    """Why DuckDB must not be given this line (without its line end), or None."""
    if len(line) > max_line_bytes:
        return LINE_TOO_LONG
    if line.translate(None, _TEXT):
        return CONTROL_CHARACTERS
    if not line.isascii():
        try:
            line.decode("utf-8")
        except UnicodeDecodeError:
            return INVALID_ENCODING
    return None


def _longest_line(block: bytes, max_line_bytes: int) -> bool:
    """Whether a line between two LFs of ``block`` has more than ``max_line_bytes``: a find per
    half-limit window (every longer line holds a window without LF), numpy only if one lacks
    it."""
    first, last = block.find(b"\n"), block.rfind(b"\n")
    window = max(max_line_bytes // 2, 1)
    if all(block.find(b"\n", p, p + window) != -1 for p in range(first + 1, last, window)):
        return False
    ends = np.flatnonzero(np.frombuffer(block, np.uint8) == 0x0A)
    return bool(np.diff(ends).max() - 1 > max_line_bytes)


class _CleanCheck:
    """Whether the pieces of a file's text, fed in order, are lines DuckDB reads as they are:
    text bytes only, UTF-8, no line over the limit, and either LF or CRLF line ends throughout.
    A false "dirty" only costs a second read; "clean" is never wrong."""

    def __init__(self, max_line_bytes: int) -> None:
        self.max_line_bytes = max_line_bytes
        self.dirty = False
        self._utf8 = codecs.getincrementaldecoder("utf-8")("strict")
        self._line_ends: str | None = None  # "lf" or "crlf" once seen
        self._after_cr = False  # the previous piece ended with CR
        self._since_lf = 0  # bytes of the line being read, before this piece

    def feed(self, piece: bytes) -> None:
        if self.dirty or not piece:
            return
        others = piece.translate(None, _ASCII_TEXT)  # one pass: controls and non-ASCII bytes
        self.dirty = (
            bool(others.translate(None, _TEXT))
            or not self._utf8_ok(piece, ascii_only=not others)
            or not self._same_line_ends(piece)
            or self._too_long(piece)
        )

    def finish(self) -> bool:
        """True if the whole text was clean."""
        if not self.dirty:
            try:
                self._utf8.decode(b"", final=True)
            except UnicodeDecodeError:
                self.dirty = True
            self.dirty = self.dirty or self._after_cr  # a CR at the very end ends a line
        return not self.dirty

    def _utf8_ok(self, piece: bytes, ascii_only: bool) -> bool:
        """Whether the piece continues the text as UTF-8 (a character may span two pieces)."""
        try:
            self._utf8.decode(piece[:1] if ascii_only else piece)  # ends a pending character
        except UnicodeDecodeError:
            return False
        return True

    def _same_line_ends(self, piece: bytes) -> bool:
        start = 0
        if self._after_cr:  # CR at the end of the last piece: this one must start with LF
            if not piece.startswith(b"\n"):
                return False
            start, self._after_cr = 1, False
        has_lf = piece.find(b"\n", start) != -1
        if b"\r" not in piece:
            if has_lf:
                if self._line_ends == "crlf":
                    return False
                self._line_ends = "lf"
            return True
        if self._line_ends == "lf":
            return False
        ends_cr = piece.endswith(b"\r")
        pairs = piece.count(b"\r\n")
        if piece.count(b"\r") - ends_cr != pairs or piece.count(b"\n", start) != pairs:
            return False
        self._line_ends, self._after_cr = "crlf", ends_cr
        return True

    def _too_long(self, piece: bytes) -> bool:
        first = piece.find(b"\n")
        if first == -1:
            self._since_lf += len(piece)
            return self._since_lf > self.max_line_bytes
        if self._since_lf + first > self.max_line_bytes:
            return True
        self._since_lf = len(piece) - piece.rfind(b"\n") - 1
        return self._since_lf > self.max_line_bytes or _longest_line(piece, self.max_line_bytes)


@dataclass(frozen=True)
class Scan:
    sha256: str  # of the file's bytes as stored (compressed or not)
    clean: bool  # DuckDB may read the file as it is
    text_bytes: int


class FileScan:
    """One read of a file: its first line first (to recognise the feed, and stop there if it is
    none), then the rest for its SHA-256 and whether it is clean. Raises UnreadableFileError,
    TextTooLargeError, OSError."""

    def __init__(
        self,
        path: Path,
        max_line_bytes: int = MAX_LINE_BYTES,
        max_text_bytes: int | None = None,
        chunk_bytes: int = CHUNK_BYTES,
    ) -> None:
        self.path = path
        self.max_line_bytes = max_line_bytes
        self.max_text_bytes = max_text_bytes
        self.chunk_bytes = chunk_bytes
        self._sha = hashlib.sha256()
        self._text_bytes = 0
        self._read: list[bytes] = []  # text pieces the header was looked for in
        self._handle: BinaryIO = open(path, "rb")  # noqa: SIM115 - closed by close()
        self._pieces = self._text()

    def __enter__(self) -> FileScan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._pieces.close()
        self._handle.close()

    def _raw(self) -> Iterator[bytes]:
        while data := self._handle.read(self.chunk_bytes):
            self._sha.update(data)
            yield data

    def _text(self) -> Iterator[bytes]:
        pieces = _inflate(self._raw(), self.chunk_bytes) if is_gzip(self.path) else self._raw()
        for piece in pieces:
            self._text_bytes += len(piece)
            if self.max_text_bytes is not None and self._text_bytes > self.max_text_bytes:
                raise TextTooLargeError(self.max_text_bytes)
            yield piece

    def first_line(self) -> bytes | None:
        """The first line without its line end; None if it is longer than the limit."""
        head = b""
        for piece in self._pieces:
            self._read.append(piece)
            head += piece
            ends = [i for i in (head.find(b"\n"), head.find(b"\r")) if i != -1]
            if ends:
                return head[: min(ends)] if min(ends) <= self.max_line_bytes else None
            if len(head) > self.max_line_bytes:
                return None
        return head

    def finish(self) -> Scan:
        """Read the rest: the SHA-256 of the file and whether it is clean."""
        check = _CleanCheck(self.max_line_bytes)
        for piece in self._read:
            check.feed(piece)
        self._read = []
        for piece in self._pieces:
            check.feed(piece)
        return Scan(self._sha.hexdigest(), check.finish(), self._text_bytes)


def header_names(first_line: bytes | None) -> list[str]:
    """The column names of a header line, trimmed and lower case; [] for none (too long, not
    UTF-8, not CSV)."""
    if first_line is None:
        return []
    try:
        text = first_line.decode("utf-8-sig")
        return [name.strip().lower() for name in next(csv.reader([text]), [])]
    except (UnicodeDecodeError, csv.Error):
        return []


class _Sanitiser:
    """Writes the second read of a dirty file: its lines with LF ends, each hostile line blank
    (its line, reason and escaped raw text to the CSV of hostile lines)."""

    def __init__(self, text: BinaryIO, hostile: TextIO, max_line_bytes: int) -> None:
        self.text = text
        self.hostile = csv.writer(hostile, lineterminator="\n")
        self.hostile.writerow(["line", "reason", "raw"])
        self.max_line_bytes = max_line_bytes
        self.lines = 0  # lines written so far
        self.blanked = 0
        self._pending = b""  # the start of a line whose end is not read yet
        self._long: tuple[bytes, int] | None = None  # a line over the limit: its start, length
        self._cr = False  # the last piece ended with CR (perhaps the half of a CRLF)

    def feed(self, piece: bytes) -> None:
        if self._cr:
            piece, self._cr = b"\r" + piece, False
        if piece.endswith(b"\r"):
            piece, self._cr = piece[:-1], True
        if b"\r" in piece:
            piece = piece.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        if self._long is not None:
            end = piece.find(b"\n")
            start, length = self._long
            rest = piece if end == -1 else piece[:end]
            if len(start) < RAW_KEPT_BYTES:  # the same start however the pieces are cut
                start += rest[: RAW_KEPT_BYTES - len(start)]
            if end == -1:
                self._long = (start, length + len(piece))
                return
            self._long = None
            self._blank_long(start, length + end)
            piece = piece[end + 1 :]
        data = self._pending + piece if self._pending else piece
        cut = data.rfind(b"\n") + 1
        if cut:
            self._block(data[:cut] if cut < len(data) else data)
        self._pending = data[cut:]
        if len(self._pending) > self.max_line_bytes:
            self._long = (self._pending[:RAW_KEPT_BYTES], len(self._pending))
            self._pending = b""

    def finish(self) -> None:
        if self._cr:
            self._cr = False
            self.feed(b"\n")
        if self._long is not None:
            self._blank_long(*self._long)
        elif self._pending:
            self._block(self._pending + b"\n")

    def _blank_long(self, start: bytes, length: int) -> None:
        """A line longer than the limit, of which only the start was kept."""
        self.lines += 1
        self.text.write(b"\n")
        if self.lines > 1:  # the header line is the feed's, never a row
            self._quarantine(LINE_TOO_LONG, _escaped(start) + f"… ({length:,} bytes)")

    def _block(self, block: bytes) -> None:
        """Whole lines, each ending with LF."""
        if not (
            block.translate(None, _TEXT)
            or not _is_utf8(block)
            or _longest_line(b"\n" + block, self.max_line_bytes)
        ):
            self.text.write(block)
            self.lines += block.count(b"\n")
            return
        kept = []
        for line in block.split(b"\n")[:-1]:
            self.lines += 1
            reason = hostile_reason(line, self.max_line_bytes)
            if reason is None:
                kept.append(line)
                continue
            kept.append(b"")
            if self.lines == 1:  # the header line is the feed's, never a row
                continue
            if reason == LINE_TOO_LONG:
                raw = _escaped(line[:RAW_KEPT_BYTES]) + f"… ({len(line):,} bytes)"
            else:
                raw = _escaped(line)
            self._quarantine(reason, raw)
        self.text.write(b"\n".join(kept) + b"\n")

    def _quarantine(self, reason: str, raw: str) -> None:
        self.blanked += 1
        self.hostile.writerow([self.lines, reason, raw])


def _is_utf8(block: bytes) -> bool:
    if block.isascii():
        return True
    try:
        block.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@dataclass(frozen=True)
class Sanitised:
    text: Path  # the file's lines, LF ends, hostile lines blank
    hostile: Path  # CSV: line, reason, raw
    blanked: int


def sanitise(
    path: Path, folder: Path, max_line_bytes: int = MAX_LINE_BYTES, chunk_bytes: int = CHUNK_BYTES
) -> Sanitised:
    """Copy a dirty file into ``folder`` as lines DuckDB reads whatever they held: line numbers
    unchanged, hostile lines blank and listed beside it. Memory stays within a few chunks."""
    text_path, hostile_path = folder / "text.csv", folder / "hostile.csv"
    with open(path, "rb") as source, open(text_path, "wb") as text, open(
        hostile_path, "w", encoding="utf-8", newline=""
    ) as hostile:
        raw = iter(lambda: source.read(chunk_bytes), b"")
        pieces = _inflate(raw, chunk_bytes) if is_gzip(path) else raw
        sanitiser = _Sanitiser(text, hostile, max_line_bytes)
        for piece in pieces:
            sanitiser.feed(piece)
        sanitiser.finish()
    return Sanitised(text_path, hostile_path, sanitiser.blanked)
