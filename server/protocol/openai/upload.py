"""A ``multipart/form-data`` body parsed as it arrives, every part bounded.

python-multipart's ``MultipartParser`` (the streaming parser Starlette uses) cuts the body into
parts without holding it; the stdlib's ``email`` parser would need the whole body in memory and
accepts malformed input silently. Small fields are kept as text (each at most
:data:`MAX_FIELD_BYTES`, at most :data:`MAX_PARTS` parts); the one ``file`` part is written to a
spooled temporary file (in memory up to :data:`SPOOL_MEMORY_BYTES`, then on disk), so the
server's memory does not grow with the upload.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping, Sequence
from typing import IO, Final

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from streamasr.server.protocol.openai.transcription import ApiError, InvalidFieldError

MAX_FIELD_BYTES: Final = 64 * 1024
"""Largest text field (a prompt of 100 phrases fits many times over)."""
MAX_PARTS: Final = 32
SPOOL_MEMORY_BYTES: Final = 1 << 20
"""Bytes of the file kept in memory before it moves to a temporary file."""
FILE_FIELD: Final = "file"


class MalformedBodyError(ApiError):
    """400: the body is not the multipart form its Content-Type announces."""

    def __init__(self, problem: str) -> None:
        super().__init__(400, f"Malformed multipart body: {problem}.", code="malformed_body")


def boundary_of(content_type: str) -> bytes:
    """The boundary of a ``multipart/form-data`` Content-Type; 400 for any other type."""
    kind, options = parse_options_header(content_type)
    if kind != b"multipart/form-data":
        raise ApiError(
            400,
            f"Content-Type must be multipart/form-data (got '{content_type[:60]}')",
            code="unsupported_content_type",
        )
    boundary = options.get(b"boundary", b"")
    if not 1 <= len(boundary) <= 70:
        raise MalformedBodyError("multipart/form-data without a valid boundary")
    return boundary


class FormUpload:
    """Feed the body with :meth:`write`, then :meth:`finish`; the fields and the file follow."""

    def __init__(self, content_type: str) -> None:
        self.fields: dict[str, list[str]] = {}
        self.file: IO[bytes] | None = None
        self.filename = ""
        self.file_bytes = 0
        self._parts = 0
        self._name: str | None = None
        self._is_file = False
        self._value = bytearray()
        self._header_field = bytearray()
        self._header_value = bytearray()
        self._headers: dict[str, bytes] = {}
        self._ended = False
        self._parser = MultipartParser(
            boundary_of(content_type),
            {
                "on_part_begin": self._part_begin,
                "on_header_field": self._header_field_data,
                "on_header_value": self._header_value_data,
                "on_header_end": self._header_end,
                "on_headers_finished": self._headers_finished,
                "on_part_data": self._part_data,
                "on_part_end": self._part_end,
                "on_end": self._end,
            },
        )

    def write(self, data: bytes) -> None:
        try:
            self._parser.write(data)
        except MultipartParseError as exc:
            raise MalformedBodyError(str(exc).rstrip(".")) from None

    def finish(self) -> tuple[Mapping[str, Sequence[str]], IO[bytes]]:
        """The fields and the file, rewound; 400 when the body stopped early or has no file."""
        if not self._ended:
            raise MalformedBodyError("the body ends before the closing boundary")
        if self.file is None:
            raise InvalidFieldError("file", "you must provide a file", "missing_required")
        self.file.seek(0)
        return self.fields, self.file

    def close(self) -> None:
        if self.file is not None:
            self.file.close()

    # -- callbacks ------------------------------------------------------------------------------

    def _part_begin(self) -> None:
        self._parts += 1
        if self._parts > MAX_PARTS:
            raise MalformedBodyError(f"more than {MAX_PARTS} parts")
        self._name, self._is_file, self._headers = None, False, {}
        self._value.clear()

    def _header_field_data(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def _header_value_data(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._header_field.decode("latin-1").lower()] = bytes(self._header_value)
        self._header_field.clear()
        self._header_value.clear()

    def _headers_finished(self) -> None:
        kind, options = parse_options_header(self._headers.get("content-disposition", b""))
        name = options.get(b"name")
        if kind != b"form-data" or name is None:
            raise MalformedBodyError("a part without 'Content-Disposition: form-data; name=...'")
        self._name = name.decode("utf-8", "replace")
        self._is_file = self._name == FILE_FIELD
        if self._is_file:
            if self.file is not None:
                raise InvalidFieldError(FILE_FIELD, "more than one file")
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")
            self.file = tempfile.SpooledTemporaryFile(max_size=SPOOL_MEMORY_BYTES)  # noqa: SIM115 (closed by close())

    def _part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file and self.file is not None:
            self.file.write(data[start:end])
            self.file_bytes += end - start
            return
        if len(self._value) + end - start > MAX_FIELD_BYTES:
            raise InvalidFieldError(
                self._name or "?",
                f"a form field of more than {MAX_FIELD_BYTES} bytes",
                "field_too_large",
            )
        self._value += data[start:end]

    def _part_end(self) -> None:
        if self._name is not None and not self._is_file:
            try:
                value = self._value.decode("utf-8")
            except UnicodeDecodeError:
                raise InvalidFieldError(self._name, "a form field that is not UTF-8") from None
            self.fields.setdefault(self._name, []).append(value)
        self._value.clear()

    def _end(self) -> None:
        self._ended = True
