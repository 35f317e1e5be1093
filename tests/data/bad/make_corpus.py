#!/usr/bin/env python3
"""Build the bad-input corpus: `python tests/data/bad/make_corpus.py` (idempotent, seeded).

Small files are written under media/, csv/ and graph/ and kept in the repository; the big
payloads (a 6 MB CSV, 50 001 rows, a 140 KB cell, a page of 3 000 recordings, JSON nested
100 000 deep) are only built in memory by the tests, through the functions below, so the
corpus stays well under 2 MB. README.md lists every file and what it tests.
"""

from __future__ import annotations

import io
import json
import random
import struct
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
SEED = 20261125

# -- media ---------------------------------------------------------------------------------


def _wav_header(*, channels: int = 1, rate: int = 16_000, bits: int = 16, data_bytes: int,
                riff_bytes: int | None = None) -> bytes:
    block = channels * bits // 8
    riff = riff_bytes if riff_bytes is not None else (36 + data_bytes) & 0xFFFFFFFF
    return (b"RIFF" + struct.pack("<I", riff) + b"WAVE"
            + b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, rate,
                                    (rate * block) & 0xFFFFFFFF, block & 0xFFFF, bits)
            + b"data" + struct.pack("<I", data_bytes & 0xFFFFFFFF))


def _png() -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + chunk(b"IEND", b""))


def _zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("minutes.txt", "not a recording\n" * 20)
    return buf.getvalue()


def _pdf() -> bytes:
    return (b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
            b"2 0 obj<</Type/Pages/Kids[]/Count 0>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n")


def _tone_m4a(seconds: float = 6.0) -> bytes:
    """AAC in MP4 with the index first (faststart), so a cut copy still opens."""
    import av
    import numpy as np

    rate = 16_000
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.2 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tone.m4a"
        _write_tone(av, np, str(path), tone, rate)
        return path.read_bytes()


def _write_tone(av: Any, np: Any, path: str, tone: Any, rate: int) -> None:
    # faststart rewrites the file at the end, so it needs a real path, not a buffer.
    with av.open(path, "w", format="mp4", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("aac", rate=rate, layout="mono")
        for start in range(0, tone.size, 1024):
            frame = av.AudioFrame.from_ndarray(tone[start:start + 1024].reshape(1, -1),
                                               format="fltp", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)


def _video_only_mp4() -> bytes:
    """A screen share without sound: one video stream, no audio stream."""
    import av
    import numpy as np

    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as container:
        stream = container.add_stream("mpeg4", rate=5)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        for index in range(5):
            image = np.full((32, 32, 3), index * 40, dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def _absurd_durations(data: bytes) -> bytes:
    """Every mvhd/mdhd/tkhd duration set to its maximum: the header claims ~years of audio."""
    out = bytearray(data)
    for box, offset in ((b"mvhd", 16), (b"mdhd", 16), (b"tkhd", 20)):
        start = 0
        while (at := out.find(box, start)) != -1:
            version = out[at + 4]
            if version == 0:
                field = at + 4 + offset
                out[field:field + 4] = b"\xff\xff\xff\xfe"
            start = at + 4
    return bytes(out)


def media_files() -> dict[str, bytes]:
    rng = random.Random(SEED)
    tone = _tone_m4a()
    ten_hours = 10 * 3600 * 16_000 * 2
    flac_streaminfo = (struct.pack(">HH", 4096, 4096) + b"\x00\x00\x00\x00\x00\x00"
                       # 16 kHz, mono, 16 bit, 10 hours of samples (36-bit field), no MD5
                       + ((16_000 << 44) | (0 << 41) | (15 << 36) | (36000 * 16_000))
                       .to_bytes(8, "big") + bytes(16))
    return {
        "empty.mp4": b"",
        "truncated-head.mp4": tone[:1024],
        "truncated-half.m4a": tone[: len(tone) // 2],
        "png-renamed.mp4": _png(),
        "zip-renamed.mp4": _zip(),
        "pdf-renamed.mp4": _pdf(),
        "html-error-page.mp4": b"<html><body><h1>502 Bad Gateway</h1></body></html>\n",
        "text.mp4": b"minutes of the meeting, not a recording\n" * 40,
        "random-bytes.mp4": rng.randbytes(4096),
        "video-no-audio.mp4": _video_only_mp4(),
        "wav-10h-header.wav": _wav_header(data_bytes=ten_hours) + bytes(3200),
        "wav-header-only.wav": _wav_header(data_bytes=0),
        "wav-zero-rate.wav": _wav_header(rate=0, data_bytes=3200) + bytes(3200),
        "wav-absurd-channels.wav": _wav_header(channels=65535, data_bytes=3200) + bytes(3200),
        "wav-riff-overflow.wav": _wav_header(data_bytes=0xFFFFFFFF, riff_bytes=0xFFFFFFFF)
        + bytes(64),
        "mp4-absurd-duration.m4a": _absurd_durations(tone),
        "mp4-ftyp-only.mp4": tone[: struct.unpack(">I", tone[:4])[0]],
        "mp4-huge-box.mp4": tone[: struct.unpack(">I", tone[:4])[0]]
        + struct.pack(">I", 0xFFFFFFF0) + b"mdat" + rng.randbytes(256),
        "id3-only.mp3": b"ID3\x04\x00\x00\x00\x00\x00\x0a" + bytes(10),
        "ogg-garbage.ogg": b"OggS\x00\x02" + rng.randbytes(200),
        "flac-10h-header.flac": b"fLaC" + b"\x80" + (34).to_bytes(3, "big") + flac_streaminfo,
    }


# -- CSV -----------------------------------------------------------------------------------

HEADER = "email,object_id,name,meeting,from,until,covers,note\n"


def csv_files() -> dict[str, bytes]:
    return {
        "empty.csv": b"",
        "blank-lines.csv": b"\n\n\r\n\n",
        "latin1.csv": "email,name\nrene@example.org,Ren\u00e9 M\u00fcller\n".encode("latin-1"),
        "utf16.csv": "email,name\nx@example.org,Anna\n".encode("utf-16"),
        "long-name.csv": ("email,name\nx@example.org," + "N" * 5000 + "\n").encode(),
        "long-email.csv": ("email\n" + "a" * 5000 + "@example.org\n").encode(),
        "unknown-column.csv": b"email,shoe_size\nx@example.org,44\n",
        "no-identity-column.csv": b"name,note\nAnna,please do not record\n",
        "unterminated-quote.csv": b'email,name\nx@example.org,"Anna\n',
        "nul-byte.csv": b"email,name\nx@example.org,An\x00na\n",
        "too-many-cells.csv": b"email,name\nx@example.org,Anna,extra,cells\n",
        "bad-date.csv": b"email,from\nx@example.org,2026-13-45\n",
        "until-before-from.csv": b"email,from,until\nx@example.org,2026-12-01,2026-11-01\n",
        "bad-covers.csv": b"email,covers\nx@example.org,everything\n",
        "bad-email.csv": b"email\nnot-an-address\n",
        "traversal-object-id.csv": b"object_id\n../../etc/passwd\n",
        "escape-sequence-name.csv": b"email,name\nx@example.org,\x1b[31mred\x1b[0m\n",
        "mixed-good-and-bad.csv": (HEADER + "a@example.org,,A,,,,both,\n"
                                   "b@example.org,,B,,,,both,\n"
                                   "c@,,C,,,,both,\n"
                                   "d@example.org,,D,,,,both,\n").encode(),
        "formula-name.csv": b"email,name\nx@example.org,=cmd|' /C calc'!A0\n",
        "formula-plus-name.csv": b"email,name\nx@example.org,+1+cmd|' /C calc'!A0\n",
        "formula-at-name.csv": b"email,name\nx@example.org,@SUM(1+1)*cmd|' /C calc'!A0\n",
        "formula-note.csv": b"email,note\nx@example.org,=HYPERLINK(\"https://evil.example\")\n",
    }


def big_csv(size: int = 6 * 1024 * 1024) -> bytes:
    """A highly compressible CSV over the 5 MB limit (the zip bomb of a CSV import)."""
    row = b"someone@example.org,,Some One,,,,both,repeated\n"
    return HEADER.encode() + row * (size // len(row) + 1)


def many_rows_csv(rows: int = 50_001) -> bytes:
    """One row over the 50 000-row limit, each row valid and distinct, under 5 MB in all."""
    return HEADER.encode() + b"".join(f"p{i}@example.org,,,,,,,\n".encode() for i in range(rows))


def huge_cell_csv(size: int = 140_000) -> bytes:
    """One cell larger than the csv module's field limit (131 072 characters)."""
    return b'email,note\nx@example.org,"' + b"x" * size + b'"\n'


# -- Graph bodies --------------------------------------------------------------------------

def graph_files() -> dict[str, bytes]:
    """Bodies a hostile or broken Graph might send; `{SELF}` is replaced by the request URL."""
    rec = {"id": "rec-1", "meetingId": "meet-1", "createdDateTime": "2026-11-02T09:30:00Z"}

    def js(value: object) -> bytes:
        return json.dumps(value).encode()

    return {
        # discovery (getAllRecordings/delta) bodies
        "html-instead-of-json.json": b"<html><body>Service Unavailable</body></html>",
        "truncated.json": js({"value": [rec, rec]})[:40],
        "empty-body.json": b"",
        "not-an-object.json": js([rec]),
        "value-not-a-list.json": js({"value": {"id": "rec-1"}}),
        "value-null.json": js({"value": None}),
        "item-without-id.json": js({"value": [{"meetingId": "meet-1"}]}),
        "item-id-not-a-string.json": js({"value": [{"id": 12345, "meetingId": "meet-1"}]}),
        "item-id-infinite.json": b'{"value": [{"id": 1e999, "meetingId": "meet-1"}]}',
        "nan-value.json": b'{"value": NaN}',
        "nextlink-other-host.json": js({"value": [rec],
                                        "@odata.nextLink": "https://evil.example/v1.0/steal"}),
        "nextlink-loop.json": js({"value": [rec], "@odata.nextLink": "{SELF}"}),
        "organizer-not-an-object.json": js({"value": [{**rec, "meetingOrganizer": "mallory"}]}),
        "organizer-user-a-list.json": js({"value": [{**rec, "meetingOrganizer": {"user": []}}]}),
        "invalid-utf8.json": b'{"value": [{"id": "rec-\xff\xfe", "meetingId": "m"}]}',
        # participants (onlineMeeting / attendanceReports) bodies
        "participants-a-list.json": js({"id": "meet-1", "participants": []}),
        "participants-organizer-a-string.json": js(
            {"id": "meet-1", "participants": {"organizer": "mallory", "attendees": []}}),
        "attendee-identity-a-string.json": js(
            {"id": "meet-1", "participants": {"attendees": [{"upn": "a@b.c",
                                                              "identity": "mallory"}]}}),
    }


def deep_json(depth: int = 100_000) -> bytes:
    """Nested arrays deeper than Python's recursion limit."""
    return b'{"value": ' + b"[" * depth + b"]" * depth + b"}"


def huge_page(items: int = 3000, pad: int = 600) -> bytes:
    """One discovery page of `items` recordings (with a repeat), each padded: about 2.5 MB."""
    value = [{"id": f"rec-{i:05d}", "meetingId": "meet-1",
              "createdDateTime": "2026-11-02T09:30:00Z", "padding": "p" * pad}
             for i in range(items)]
    value.append(value[0])  # delta may repeat an item: counted once
    return json.dumps({"value": value,
                       "@odata.deltaLink": "{SELF}?deltaToken=done"}).encode()


def main() -> None:
    for sub, files in (("media", media_files()), ("csv", csv_files()),
                       ("graph", graph_files())):
        folder = HERE / sub
        folder.mkdir(exist_ok=True)
        for name, data in files.items():
            (folder / name).write_bytes(data)
    total = sum(p.stat().st_size for p in HERE.rglob("*") if p.is_file())
    print(f"corpus written under {HERE} ({total} bytes)")


if __name__ == "__main__":
    main()
