"""How a session lives in the blob store: checkpoints and archived log segments.

Layout (seqs zero-padded so lexical order is seq order)::

    sessions/<session_id>/checkpoints/<seq>.ckpt
    sessions/<session_id>/segments/<first_seq>-<last_seq>.ndjson.gz
"""

from __future__ import annotations

import gzip
import logging
import re
import zlib
from collections.abc import Callable, Iterator

import orjson

from inkstep.protocol import ID_PATTERN
from inkstep.store.blob import BlobStore
from inkstep.store.errors import StoreError

logger = logging.getLogger(__name__)

SEQ_DIGITS = 12
_SESSION_ID = re.compile(ID_PATTERN)
_CHECKPOINT_NAME = re.compile(rf"^(\d{{{SEQ_DIGITS}}})\.ckpt$")
_SEGMENT_NAME = re.compile(rf"^(\d{{{SEQ_DIGITS}}})-(\d{{{SEQ_DIGITS}}})\.ndjson\.gz$")


def _session_prefix(session_id: str) -> str:
    # A "/" or ".." in an id would let one session read or prune another's objects.
    if not _SESSION_ID.match(session_id):
        raise ValueError(f"invalid session id {session_id!r}: expected {ID_PATTERN}")
    return f"sessions/{session_id}/"


def _seq(seq: int) -> str:
    if seq < 0 or seq >= 10**SEQ_DIGITS:
        raise ValueError(f"seq {seq} out of range for a {SEQ_DIGITS}-digit key")
    return f"{seq:0{SEQ_DIGITS}d}"


def checkpoint_key(session_id: str, seq: int) -> str:
    """The key of the checkpoint holding the state after event `seq`."""
    return f"{_session_prefix(session_id)}checkpoints/{_seq(seq)}.ckpt"


def segment_key(session_id: str, first_seq: int, last_seq: int) -> str:
    """The key of the archived segment holding events `first_seq`..`last_seq`."""
    if first_seq > last_seq:
        raise ValueError(f"segment first_seq {first_seq} is after last_seq {last_seq}")
    return f"{_session_prefix(session_id)}segments/{_seq(first_seq)}-{_seq(last_seq)}.ndjson.gz"


def write_checkpoint(store: BlobStore, session_id: str, seq: int, data: bytes) -> str:
    """Store the session's state after event `seq`; returns the key."""
    key = checkpoint_key(session_id, seq)
    store.put(key, data)
    logger.debug("checkpoint %s (%d bytes)", key, len(data), extra={"session_id": session_id})
    return key


def checkpoint_seqs(store: BlobStore, session_id: str) -> list[int]:
    """The seqs of the session's stored checkpoints, oldest first."""
    prefix = f"{_session_prefix(session_id)}checkpoints/"
    seqs: list[int] = []
    for key in store.list(prefix):
        match = _CHECKPOINT_NAME.match(key[len(prefix) :])
        if match:
            seqs.append(int(match.group(1)))
    return sorted(seqs)


def latest_checkpoint(store: BlobStore, session_id: str) -> tuple[int, bytes] | None:
    """The newest checkpoint as (seq, data), or None when the session has none."""
    for seq in reversed(checkpoint_seqs(store, session_id)):
        data = store.get(checkpoint_key(session_id, seq))
        # None: pruned between list and get by a concurrent writer; an older one will do.
        if data is not None:
            return seq, data
    return None


def prune_checkpoints(store: BlobStore, session_id: str, keep: int = 2) -> list[int]:
    """Delete all but the newest `keep` checkpoints; returns the seqs deleted."""
    if keep < 1:
        raise ValueError(f"keep must be at least 1 so a checkpoint remains, got {keep}")
    doomed = checkpoint_seqs(store, session_id)[:-keep]
    for seq in doomed:
        store.delete(checkpoint_key(session_id, seq))
    return doomed


# Segments are written on the session actor's checkpoint thread, beside its ops. Level 1
# compresses 2000 stroke events (2.4 MB) in ~35 ms to 8% more bytes than level 6's ~145 ms.
SEGMENT_COMPRESS_LEVEL = 1


def _event_seq(event: str) -> int:
    try:
        # orjson: ~8 µs an event where json took ~45 (a checkpoint reads 2000 of them).
        seq = orjson.loads(event)["seq"]
    except (ValueError, TypeError, KeyError) as exc:
        problem = f"archived event must be a JSON object with a seq: {event[:80]!r}"
        raise ValueError(problem) from exc
    if not isinstance(seq, int) or isinstance(seq, bool):
        raise ValueError(f"archived event seq must be an integer, got {seq!r}")
    return seq


# Events parsed and compressed per piece of a segment, between two of its rests.
EVENTS_PER_PIECE = 200


def write_segment(
    store: BlobStore, session_id: str, events: list[str], rest: Callable[[], None] | None = None
) -> str:
    """Archive events (compact JSON strings, each with an int "seq") as one gzip'd NDJSON object.

    Returns the key. Writing the same range again replaces the object with the same content,
    so an actor that crashed mid-archive can simply redo it. The events are read and
    compressed a piece at a time, with `rest` called after each (a paced checkpoint).
    """
    numbered: list[tuple[int, str]] = []
    for start in range(0, len(events), EVENTS_PER_PIECE):
        numbered.extend((_event_seq(e), e) for e in events[start : start + EVENTS_PER_PIECE])
        if rest is not None:
            rest()
    return write_numbered_segment(store, session_id, numbered, rest)


def write_numbered_segment(
    store: BlobStore,
    session_id: str,
    numbered: list[tuple[int, str]],
    rest: Callable[[], None] | None = None,
) -> str:
    """`write_segment` for (seq, event) pairs whose seqs the caller already has, as the log's
    entry ids give them: reading each from its JSON was about a quarter of archiving a segment."""
    if not numbered:
        raise ValueError("a segment needs at least one event")
    for _, event in numbered:
        if "\n" in event or "\r" in event:
            raise ValueError(f"archived events must be one-line JSON: {event[:80]!r}")
    by_seq = sorted(numbered, key=lambda pair: pair[0])
    key = segment_key(session_id, by_seq[0][0], by_seq[-1][0])
    # A gzip stream (wbits 31) with no name and mtime 0, so a redo of the same range is
    # identical.
    compressor = zlib.compressobj(SEGMENT_COMPRESS_LEVEL, zlib.DEFLATED, 31)
    packed: list[bytes] = []
    for start in range(0, len(by_seq), EVENTS_PER_PIECE):
        piece = "".join(f"{event}\n" for _, event in by_seq[start : start + EVENTS_PER_PIECE])
        packed.append(compressor.compress(piece.encode()))
        if rest is not None:
            rest()
    packed.append(compressor.flush())
    store.put(key, b"".join(packed))
    logger.debug("archived %d events to %s", len(numbered), key, extra={"session_id": session_id})
    return key


def list_segments(store: BlobStore, session_id: str) -> list[tuple[int, int]]:
    """The (first_seq, last_seq) ranges of the session's archived segments, in order."""
    prefix = f"{_session_prefix(session_id)}segments/"
    ranges: list[tuple[int, int]] = []
    for key in store.list(prefix):
        match = _SEGMENT_NAME.match(key[len(prefix) :])
        if match:
            ranges.append((int(match.group(1)), int(match.group(2))))
    return sorted(ranges)


def read_segments(store: BlobStore, session_id: str, after_seq: int = 0) -> Iterator[str]:
    """Every archived event with seq > `after_seq`, in seq order, once each despite overlaps."""
    last = after_seq
    for first_seq, last_seq in list_segments(store, session_id):
        if last_seq <= last:
            continue
        key = segment_key(session_id, first_seq, last_seq)
        blob = store.get(key)
        if blob is None:
            raise StoreError(f"archived segment {key} was listed but is gone")
        try:
            lines = gzip.decompress(blob).decode().splitlines()
        except (OSError, EOFError, UnicodeDecodeError) as exc:
            raise StoreError(f"archived segment {key} is corrupt: {exc}") from exc
        for line in lines:
            try:
                seq = _event_seq(line)
            except ValueError as exc:
                raise StoreError(f"archived segment {key} holds a bad event: {exc}") from exc
            # Segments are sorted by first_seq and each is sorted inside, so this one check
            # drops overlaps and keeps seq order.
            if seq > last:
                last = seq
                yield line


def archived_upto(store: BlobStore, session_id: str) -> int:
    """The highest seq any archived segment holds (0 when nothing is archived)."""
    return max((last for _first, last in list_segments(store, session_id)), default=0)
