"""The frame splitter ahead of websockets (server/service/wire/framing.py), against websockets' own
frames: every byte passes through, boundaries where websockets puts them, payloads unmasked."""

from __future__ import annotations

import random

import pytest
from websockets.frames import Frame, Opcode

from streamasr.server.service.wire.framing import FrameSplitter, SplitFrame, whole_audio

LENGTHS = (0, 1, 125, 126, 640, 65535, 65536, 70000)
"""Payload sizes on both sides of the 7-bit, 16-bit and 64-bit length encodings."""


def client_frames(seed: int) -> list[Frame]:
    """Binary, text, fragmented and control frames of every length encoding."""
    rng = random.Random(seed)
    frames = []
    for length in LENGTHS:
        frames.append(Frame(Opcode.BINARY, rng.randbytes(length)))
    frames += [
        Frame(Opcode.TEXT, b'{"type": "stop"}'),
        Frame(Opcode.BINARY, rng.randbytes(300), fin=False),
        Frame(Opcode.CONT, rng.randbytes(200)),
        Frame(Opcode.PING, b"ping"),
        Frame(Opcode.CLOSE, b"\x03\xe8"),
    ]
    rng.shuffle(frames)
    return frames


def wire(frames: list[Frame]) -> bytes:
    """The frames as a client sends them: masked with random keys."""
    return b"".join(frame.serialize(mask=True, extensions=[]) for frame in frames)


def chunked(data: bytes, rng: random.Random) -> list[bytes]:
    """``data`` in the pieces TCP might deliver: from single bytes to several frames."""
    out, at = [], 0
    while at < len(data):
        size = rng.choice((1, 2, 3, 7, 100, 700, 5000, 100_000))
        out.append(data[at : at + size])
        at += size
    return out


def split_all(splitter: FrameSplitter, pieces: list[bytes]) -> list[SplitFrame]:
    return [frame for piece in pieces for frame in splitter.split(piece)]


@pytest.mark.parametrize("seed", range(6))
def test_frames_come_out_whole_and_in_order_however_the_bytes_arrive(seed: int) -> None:
    rng = random.Random(seed)
    frames = client_frames(seed)
    data = wire(frames)
    splitter = FrameSplitter(max_size=1 << 20)
    split = split_all(splitter, chunked(data, rng))
    assert b"".join(bytes(frame.raw) for frame in split) == data  # nothing lost or reordered
    assert splitter.held == 0
    assert [frame.first & 0x0F for frame in split] == [int(f.opcode) for f in frames]
    for frame, sent in zip(split, frames, strict=True):
        assert frame.payload() == sent.data
        assert frame.audio == (sent.opcode is Opcode.BINARY and sent.fin)
        parsed = parse_with_websockets(bytes(frame.raw))
        assert parsed.data == sent.data and parsed.fin == sent.fin


def parse_with_websockets(raw: bytes) -> Frame:
    buffer = bytearray(raw)

    def read_exact(n: int):  # type: ignore[no-untyped-def]
        chunk = bytes(buffer[:n])
        del buffer[:n]
        return chunk
        yield  # pragma: no cover - a generator, as websockets' reader is

    parser = Frame.parse(read_exact, mask=True)
    try:
        next(parser)
    except StopIteration as done:
        assert not buffer
        frame: Frame = done.value
        return frame
    raise AssertionError("websockets wanted more bytes than the split frame has")


def test_an_unmasked_or_extended_frame_is_not_audio() -> None:
    unmasked = Frame(Opcode.BINARY, b"\x00\x01").serialize(mask=False, extensions=[])
    plain = Frame(Opcode.BINARY, b"\x00\x01").serialize(mask=True, extensions=[])
    compressed = bytes([plain[0] | 0x40]) + plain[1:]  # RSV1: permessage-deflate's bit
    frames = list(FrameSplitter(max_size=100).split(unmasked + compressed))
    assert [frame.audio for frame in frames] == [False, False]
    assert b"".join(bytes(frame.raw) for frame in frames) == unmasked + compressed


def test_an_oversized_frame_hands_over_the_rest_of_the_stream() -> None:
    rng = random.Random(1)
    small = Frame(Opcode.BINARY, b"ab").serialize(mask=True, extensions=[])
    big = Frame(Opcode.BINARY, rng.randbytes(2000)).serialize(mask=True, extensions=[])
    splitter = FrameSplitter(max_size=1000)
    frames = list(splitter.split(small + big[:10]))
    assert len(frames) == 2 and not frames[0].oversized and frames[1].oversized
    assert bytes(frames[1].raw) == big[:10]  # the header announced 2,000 bytes: not held
    assert splitter.held == 0


def test_it_holds_no_more_than_the_incomplete_frame() -> None:
    rng = random.Random(2)
    frame = Frame(Opcode.BINARY, rng.randbytes(640)).serialize(mask=True, extensions=[])
    splitter = FrameSplitter(max_size=1000)
    assert list(splitter.split(frame[:300])) == []
    assert splitter.held == 300
    (whole,) = splitter.split(frame[300:] + frame[:1])
    assert bytes(whole.raw) == frame and splitter.held == 1


@pytest.mark.parametrize("length", LENGTHS)
def test_one_whole_binary_message_is_read_without_the_splitter(length: int) -> None:
    payload = random.Random(length).randbytes(length)
    frame = Frame(Opcode.BINARY, payload).serialize(mask=True, extensions=[])
    expected = payload if length < 65536 else None  # 64-bit lengths take the splitter
    assert whole_audio(frame, max_size=1 << 20) == expected
    assert whole_audio(frame + b"\x82", max_size=1 << 20) is None  # more than one frame
    assert whole_audio(frame[:-1], max_size=1 << 20) is None  # incomplete
    assert whole_audio(frame, max_size=length - 1) is None  # over the size limit
    text = Frame(Opcode.TEXT, payload[:100]).serialize(mask=True, extensions=[])
    unmasked = Frame(Opcode.BINARY, payload).serialize(mask=False, extensions=[])
    partial = Frame(Opcode.BINARY, payload, fin=False).serialize(mask=True, extensions=[])
    assert whole_audio(text, 1 << 20) is whole_audio(unmasked, 1 << 20) is None
    assert whole_audio(partial, 1 << 20) is None
