"""Transcript exports: WebVTT (what Teams itself produces), SRT, plain text and JSON.

JSON is the stored form (it round-trips exactly through `from_json`); the others are renderings
for people and players. Cue text is kept on one line: a blank line would end a cue early, and in
WebVTT `&`, `<` and `>` must be escaped (escaping `>` also defuses a `-->` inside the text).

Speaker labels, where diarization gave them: WebVTT carries each as a voice span
(`<v Speaker 2>text</v>`, as Teams' own transcripts do), SRT and text as a "Speaker 2: " prefix
(text joins one speaker's consecutive segments into one line), JSON as `speaker` and
`speaker_source` fields of each segment plus the `turns` themselves. Transcripts stored before
diarization existed have none of these and render as they always did.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from typing import Any

from meeting_governance.diarization.turns import SPEAKER_SOURCES, UNNAMED, SpeakerTurn
from meeting_governance.errors import InputError
from meeting_governance.segments import Segment, TranscriptResult

FORMATS = ("vtt", "srt", "json", "txt")
JSON_VERSION = 1
MEDIA_TYPES = {
    "vtt": "text/vtt; charset=utf-8",
    "srt": "application/x-subrip; charset=utf-8",
    "json": "application/json",
    "txt": "text/plain; charset=utf-8",
}

_WHITESPACE = re.compile(r"\s+")


def _one_line(text: str) -> str:
    return _WHITESPACE.sub(" ", text).strip()


def _clock(seconds: float, separator: str) -> str:
    millis = max(0, round(seconds * 1000)) if math.isfinite(seconds) else 0
    hours, rest = divmod(millis, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    secs, millis = divmod(rest, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def vtt_timestamp(seconds: float) -> str:
    """`HH:MM:SS.mmm`, the form WebVTT requires (hours always present, for long meetings)."""
    return _clock(seconds, ".")


def srt_timestamp(seconds: float) -> str:
    """`HH:MM:SS,mmm`: SRT's comma before the milliseconds."""
    return _clock(seconds, ",")


def escape_vtt(text: str) -> str:
    """Cue text safe for WebVTT: entities for `&`, `<`, `>`; one line, no blank lines."""
    return _one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _spoken(segments: Iterable[Segment]) -> list[Segment]:
    # An empty cue is malformed SRT and an empty WebVTT cue ends in a blank line: leave it out.
    return [s for s in segments if _one_line(s.text)]


def _voice(segment: Segment) -> str:
    """Cue text with the speaker as a WebVTT voice span when there is one."""
    text = escape_vtt(segment.text)
    if not segment.speaker:
        return text
    return f"<v {escape_vtt(segment.speaker)}>{text}</v>"


def _prefixed(segment: Segment) -> str:
    text = _one_line(segment.text)
    return f"{_one_line(segment.speaker)}: {text}" if segment.speaker else text


def to_vtt(segments: Iterable[Segment], notes: Iterable[str] = ()) -> str:
    """WebVTT with one numbered cue per segment that has words; `notes` become NOTE blocks
    before the first cue (how each named speaker was named)."""
    lines = ["WEBVTT", ""]
    for note in notes:
        lines += [f"NOTE {_one_line(note).replace('-->', '->')}", ""]
    for index, segment in enumerate(_spoken(segments), start=1):
        lines += [
            str(index),
            f"{vtt_timestamp(segment.start)} --> {vtt_timestamp(segment.end)}",
            _voice(segment),
            "",
        ]
    return "\n".join(lines)


def to_srt(segments: Iterable[Segment]) -> str:
    """SubRip: numbered cues, comma milliseconds, text on one line ("Speaker 2: " before it)."""
    lines: list[str] = []
    for index, segment in enumerate(_spoken(segments), start=1):
        lines += [
            str(index),
            f"{srt_timestamp(segment.start)} --> {srt_timestamp(segment.end)}",
            _prefixed(segment),
            "",
        ]
    return "\n".join(lines)


def to_txt(segments: Iterable[Segment]) -> str:
    """The words only, one segment per line; with speakers, one line per speaker's turn."""
    spoken = _spoken(segments)
    if not any(s.speaker for s in spoken):
        return "".join(_one_line(s.text) + "\n" for s in spoken)
    lines: list[tuple[str | None, list[str]]] = []
    for segment in spoken:
        if lines and segment.speaker and lines[-1][0] == segment.speaker:
            lines[-1][1].append(_one_line(segment.text))
        else:
            lines.append((segment.speaker, [_one_line(segment.text)]))
    return "".join((f"{_one_line(who)}: " if who else "") + " ".join(words) + "\n"
                   for who, words in lines)


def to_json(result: TranscriptResult) -> str:
    """The stored form: every field of the result, exactly; UTF-8 text, not ASCII escapes.

    Speaker fields appear only where there is a speaker, so a transcript without diarization
    is stored exactly as before diarization existed."""
    document: dict[str, Any] = {
        "version": JSON_VERSION,
        "model": result.model,
        "language": result.language,
        "language_probability": result.language_probability,
        "duration": result.duration,
        "segments": [segment_json(s) for s in result.segments],
    }
    if result.turns:
        document["turns"] = [{"start": t.start, "end": t.end, "speaker": t.speaker,
                              "speaker_source": t.speaker_source} for t in result.turns]
    return json.dumps(document, ensure_ascii=False, allow_nan=False)


def segment_json(segment: Segment) -> dict[str, Any]:
    """A segment as the stored JSON holds it (speaker fields only when labelled)."""
    item: dict[str, Any] = {"start": segment.start, "end": segment.end, "text": segment.text}
    if segment.speaker is not None:
        item["speaker"] = segment.speaker
        item["speaker_source"] = segment.speaker_source or UNNAMED
    return item


def from_json(text: str) -> TranscriptResult:
    """Parse what `to_json` wrote; anything else raises InputError, not a KeyError."""
    try:
        document = json.loads(text)
        if not isinstance(document, dict) or document.get("version") != JSON_VERSION:
            raise ValueError(f"expected a JSON object with version {JSON_VERSION}")
        segments = tuple(_segment(item) for item in document["segments"])
        turns = tuple(_turn(item) for item in document.get("turns") or ())
        return TranscriptResult(
            segments=segments,
            language=_typed(document["language"], str),
            language_probability=float(_number(document["language_probability"])),
            duration=float(_number(document["duration"])),
            model=_typed(document["model"], str),
            turns=turns,
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(
            f"not a transcript JSON document ({type(exc).__name__}: {exc}); "
            "export it again with `transcript export ID --format json`"
        ) from None


def speaker_fields(item: dict[str, Any]) -> tuple[str | None, str | None]:
    """(speaker, speaker_source) of a stored segment or turn; both None when unlabelled."""
    speaker = item.get("speaker")
    if speaker is None:
        return None, None
    speaker = _typed(speaker, str)
    if not speaker.strip():
        raise ValueError("a speaker label must not be empty")
    source = item.get("speaker_source") or UNNAMED
    if source not in SPEAKER_SOURCES:
        raise ValueError(f"speaker_source must be one of {', '.join(SPEAKER_SOURCES)}")
    return speaker, source


def _segment(item: Any) -> Segment:
    if not isinstance(item, dict):
        raise TypeError("a segment must be an object")
    speaker, source = speaker_fields(item)
    return Segment(
        start=float(_number(item["start"])),
        end=float(_number(item["end"])),
        text=_typed(item["text"], str),
        speaker=speaker,
        speaker_source=source,
    )


def _turn(item: Any) -> SpeakerTurn:
    if not isinstance(item, dict):
        raise TypeError("a turn must be an object")
    speaker, source = speaker_fields(item)
    if speaker is None or source is None:
        raise ValueError("a turn must name its speaker")
    return SpeakerTurn(start=float(_number(item["start"])), end=float(_number(item["end"])),
                       speaker=speaker, speaker_source=source)


def _number(value: Any) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {type(value).__name__}")
    return value


def _typed(value: Any, kind: type[str]) -> str:
    if not isinstance(value, kind):
        raise TypeError(f"expected {kind.__name__}, got {type(value).__name__}")
    return value


def render(result: TranscriptResult, fmt: str, notes: Iterable[str] = ()) -> str:
    """One of FORMATS; an unknown name is the caller's input error, listed with the choices.
    `notes` (how named speakers were named) become WebVTT NOTE blocks."""
    name = fmt.lower().lstrip(".")
    if name == "vtt":
        return to_vtt(result.segments, notes)
    if name == "srt":
        return to_srt(result.segments)
    if name == "txt":
        return to_txt(result.segments)
    if name == "json":
        return to_json(result)
    raise InputError(f"unknown transcript format {fmt!r}; choose one of {', '.join(FORMATS)}")
