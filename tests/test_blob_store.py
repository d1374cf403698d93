"""Both blob stores through the same tests: a local folder, and S3 on a moto server over HTTP."""

from __future__ import annotations

import gzip
import json
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from inkstep.embedded import free_port
from inkstep.store.archive import (
    archived_upto,
    checkpoint_key,
    checkpoint_seqs,
    latest_checkpoint,
    list_segments,
    prune_checkpoints,
    read_segments,
    segment_key,
    write_checkpoint,
    write_numbered_segment,
    write_segment,
)
from inkstep.store.blob import BlobStore, FileBlobStore, S3BlobStore, open_blob_store
from inkstep.store.errors import StoreError, StoreUnavailable


@pytest.fixture(params=["file", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> BlobStore:
    """A fresh, empty store of each kind, opened by URL as the server would."""
    if request.param == "file":
        return open_blob_store(f"file://{tmp_path / 'blobs'}")
    endpoint: str = request.getfixturevalue("s3_endpoint_url")
    bucket = f"inkstep-{uuid.uuid4().hex[:12]}"
    return open_blob_store(
        f"s3://{bucket}/some/prefix", s3_endpoint_url=endpoint, create_bucket=True
    )


def event(seq: int, **payload: object) -> str:
    return json.dumps({"type": "stroke_append", "seq": seq, "payload": payload})


def sid() -> str:
    return f"s-{uuid.uuid4().hex[:10]}"


def test_put_get_delete_round_trip(store: BlobStore) -> None:
    assert store.get("a/b.bin") is None
    store.put("a/b.bin", b"\x00\x01 first")
    store.put("a/b.bin", b"second")
    assert store.get("a/b.bin") == b"second"
    store.delete("a/b.bin")
    assert store.get("a/b.bin") is None
    store.delete("a/b.bin")  # deleting a missing key is fine


def test_empty_and_large_values(store: BlobStore) -> None:
    big = bytes(range(256)) * 40_000  # 10 MB, past S3's single-read buffers
    store.put("big", big)
    store.put("empty", b"")
    assert store.get("big") == big
    assert store.get("empty") == b""


def test_list_is_sorted_and_prefix_exact(store: BlobStore) -> None:
    for key in ["s/b/2", "s/a/1", "s/a/10", "s/ab/1", "t/a/1", "s/a/0"]:
        store.put(key, key.encode())
    assert store.list("s/a/") == ["s/a/0", "s/a/1", "s/a/10"]
    assert store.list("s/a") == ["s/a/0", "s/a/1", "s/a/10", "s/ab/1"]
    assert store.list("") == ["s/a/0", "s/a/1", "s/a/10", "s/ab/1", "s/b/2", "t/a/1"]
    assert store.list("nothing/") == []


@pytest.mark.parametrize("key", ["/abs", "a/../b", "a//b", "", "a/./b", "trailing/"])
def test_keys_that_could_escape_are_refused(store: BlobStore, key: str) -> None:
    with pytest.raises(StoreError, match="invalid blob key"):
        store.put(key, b"x")


def test_open_blob_store_reuses_stores(tmp_path: Path) -> None:
    url = (tmp_path / "a b").as_uri()  # percent-encoded, as Path.as_uri() writes it
    store = open_blob_store(url)
    assert store is open_blob_store(url)
    assert isinstance(store, FileBlobStore) and store.root == tmp_path / "a b"


def test_file_store_leaves_no_temp_files(tmp_path: Path) -> None:
    store = FileBlobStore(tmp_path)
    for i in range(5):
        store.put("x/y", str(i).encode())
    assert [p.name for p in (tmp_path / "x").iterdir()] == ["y"]
    assert store.get("x/y") == b"4"


def test_readers_never_see_a_partial_write(store: BlobStore) -> None:
    values = [bytes([i]) * 300_000 for i in range(1, 30)]
    store.put("hot", values[0])

    def write_all() -> None:
        for value in values[1:]:
            store.put("hot", value)

    with ThreadPoolExecutor(1) as pool:
        writing = pool.submit(write_all)
        while not writing.done():
            assert store.get("hot") in values
        writing.result()
    assert store.get("hot") == values[-1]


def test_file_store_io_error_is_store_unavailable(tmp_path: Path) -> None:
    (tmp_path / "blocker").write_bytes(b"a file where a folder should be")
    store = FileBlobStore(tmp_path)
    with pytest.raises(StoreUnavailable, match="cannot write blob"):
        store.put("blocker/child", b"x")


def test_s3_prefix_isolates_stores(s3_endpoint_url: str) -> None:
    bucket = f"inkstep-{uuid.uuid4().hex[:12]}"
    one = S3BlobStore(bucket, "one", endpoint_url=s3_endpoint_url, create_bucket=True)
    two = S3BlobStore(bucket, "two/", endpoint_url=s3_endpoint_url, create_bucket=True)
    one.put("k", b"1")
    two.put("k", b"2")
    assert (one.get("k"), two.get("k")) == (b"1", b"2")
    assert one.list("") == ["k"]


def test_s3_missing_bucket_is_store_error(s3_endpoint_url: str) -> None:
    store = S3BlobStore(f"absent-{uuid.uuid4().hex[:8]}", endpoint_url=s3_endpoint_url)
    with pytest.raises(StoreError, match="NoSuchBucket"):
        store.put("k", b"x")


def test_s3_unreachable_endpoint_is_store_unavailable() -> None:
    store = S3BlobStore("bucket", endpoint_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(StoreUnavailable, match="unreachable"):
        store.get("k")


@pytest.mark.parametrize(
    "url", ["http://x/y", "file://host/path", "file:relative", "s3:///no-bucket", "nope"]
)
def test_open_blob_store_rejects_bad_urls(url: str) -> None:
    with pytest.raises(StoreError):
        open_blob_store(url)


# --- the session layout on top of both stores ---------------------------------------------


def test_keys_sort_by_seq() -> None:
    keys = [checkpoint_key("s1", seq) for seq in (10, 9, 100, 1)]
    assert sorted(keys) == [checkpoint_key("s1", seq) for seq in (1, 9, 10, 100)]
    assert segment_key("s1", 1, 500) < segment_key("s1", 501, 1000)
    with pytest.raises(ValueError, match="invalid session id"):
        checkpoint_key("../other", 1)


def test_checkpoint_round_trip_and_prune(store: BlobStore) -> None:
    session_id = sid()
    assert latest_checkpoint(store, session_id) is None
    for seq in (500, 1000, 9, 1500):
        write_checkpoint(store, session_id, seq, f"state@{seq}".encode())
    assert latest_checkpoint(store, session_id) == (1500, b"state@1500")
    assert prune_checkpoints(store, session_id, keep=2) == [9, 500]
    assert checkpoint_seqs(store, session_id) == [1000, 1500]
    assert latest_checkpoint(store, session_id) == (1500, b"state@1500")
    # another session's checkpoints are its own
    assert latest_checkpoint(store, sid()) is None


def test_latest_checkpoint_ignores_stray_objects(store: BlobStore) -> None:
    session_id = sid()
    write_checkpoint(store, session_id, 5, b"five")
    # A stray object that only looks like a checkpoint by prefix is ignored.
    store.put(f"sessions/{session_id}/checkpoints/garbage.tmp", b"x")
    assert latest_checkpoint(store, session_id) == (5, b"five")


def test_segment_round_trip(store: BlobStore) -> None:
    session_id = sid()
    assert list(read_segments(store, session_id)) == []
    assert archived_upto(store, session_id) == 0
    first = [event(seq, text="é ✓ \n escaped") for seq in range(1, 101)]
    second = [event(seq) for seq in range(101, 151)]
    key = write_segment(store, session_id, first)
    write_segment(store, session_id, second)
    assert key == segment_key(session_id, 1, 100)
    assert list_segments(store, session_id) == [(1, 100), (101, 150)]
    assert archived_upto(store, session_id) == 150
    assert list(read_segments(store, session_id)) == first + second
    assert list(read_segments(store, session_id, after_seq=120)) == second[20:]
    assert list(read_segments(store, session_id, after_seq=150)) == []
    # the object really is gzip'd NDJSON
    raw = store.get(key)
    assert raw is not None
    assert gzip.decompress(raw).decode().splitlines() == first


def test_a_numbered_segment_is_the_segment_of_its_events(store: BlobStore) -> None:
    """The actor archives (seq, event) pairs read from the log: the same object, byte for
    byte, as archiving the events whose seqs are read from their JSON."""
    session_id, other = sid(), sid()
    events = [event(seq, text="é ✓") for seq in range(7, 130)]
    key = write_segment(store, session_id, events)
    numbered_key = write_numbered_segment(store, other, list(enumerate(events, start=7)))
    assert numbered_key == segment_key(other, 7, 129)
    assert store.get(numbered_key) == store.get(key)
    assert list(read_segments(store, other)) == events
    with pytest.raises(ValueError):
        write_numbered_segment(store, other, [])


def test_overlapping_segments_yield_each_event_once(store: BlobStore) -> None:
    session_id = sid()
    # An actor that crashed after archiving re-archives an overlapping range.
    write_segment(store, session_id, [event(s) for s in range(1, 51)])
    write_segment(store, session_id, [event(s) for s in range(40, 81)])
    write_segment(store, session_id, [event(s) for s in range(60, 71)])
    write_segment(store, session_id, [event(s) for s in range(81, 91)])
    seqs = [json.loads(e)["seq"] for e in read_segments(store, session_id)]
    assert seqs == list(range(1, 91))
    seqs = [json.loads(e)["seq"] for e in read_segments(store, session_id, after_seq=45)]
    assert seqs == list(range(46, 91))


def test_segment_events_are_sorted_by_seq(store: BlobStore) -> None:
    session_id = sid()
    key = write_segment(store, session_id, [event(3), event(1), event(2)])
    assert key == segment_key(session_id, 1, 3)
    assert [json.loads(e)["seq"] for e in read_segments(store, session_id)] == [1, 2, 3]


@pytest.mark.parametrize(
    "events", [[], ['{"seq": "1"}'], ["not json"], ['{"no_seq": 1}'], ['{\n"seq": 1}']]
)
def test_bad_segments_are_refused(tmp_path: Path, events: list[str]) -> None:
    with pytest.raises(ValueError):
        write_segment(FileBlobStore(tmp_path), "s1", events)


def test_corrupt_segment_is_store_error(store: BlobStore) -> None:
    session_id = sid()
    store.put(segment_key(session_id, 1, 2), b"not gzip")
    with pytest.raises(StoreError, match="corrupt"):
        list(read_segments(store, session_id))
