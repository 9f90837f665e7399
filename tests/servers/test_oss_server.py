"""Tests of the OSS-protocol test server, driven with oss2 itself (and raw HTTP where oss2 cannot say it)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.client
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import unquote, urlsplit
from xml.etree import ElementTree

import pytest

oss2 = pytest.importorskip("oss2")

from oss2.models import PartInfo  # noqa: E402

from tests.servers.oss import OssRequestHandler, OssServer, crc64_combine, crc64ecma  # noqa: E402

AK, SK, BUCKET = "test-ak", "test-sk", "test-bucket"


@pytest.fixture(scope="module")
def oss_server() -> Iterator[OssServer]:
    with OssServer(access_key_id=AK, access_key_secret=SK, buckets=(BUCKET, "other-bucket")) as server:
        yield server


@pytest.fixture
def server(oss_server: OssServer) -> OssServer:
    oss_server.reset()
    return oss_server


@pytest.fixture
def bucket(server: OssServer) -> oss2.Bucket:
    return oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)


def oss_crc(data: bytes) -> int:
    crc = oss2.utils.Crc64()
    crc.update(data)
    return int(crc.crc)


def md5_hex(data: bytes) -> str:
    return hashlib.md5(data).hexdigest().upper()


def v1_signature(string_to_sign: str, secret: str = SK) -> str:
    return base64.b64encode(hmac.new(secret.encode(), string_to_sign.encode(), hashlib.sha1).digest()).decode()


def raw_request(
    server: OssServer,
    method: str,
    path: str,
    *,
    headers: dict[str, str] | None = None,
    body: bytes = b"",
    resource: str | None = None,
    conn: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """Send a V1-signed request over http.client (our own signing: a cross-check of the server's verifier)."""
    headers = dict(headers or {})
    headers.setdefault("Date", oss2.utils.http_date())
    oss_headers = sorted((k.lower(), v) for k, v in headers.items() if k.lower().startswith("x-oss-"))
    canonical = "".join(f"{k}:{v}\n" for k, v in oss_headers)
    if resource is None:
        resource = unquote(path)
    string_to_sign = "\n".join(
        [method, headers.get("Content-MD5", ""), headers.get("Content-Type", ""), headers["Date"], canonical + resource]
    )
    headers["Authorization"] = f"OSS {AK}:{v1_signature(string_to_sign)}"
    own = conn is None
    if conn is None:
        conn = http.client.HTTPConnection(urlsplit(server.endpoint).netloc, timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
    finally:
        if own:
            conn.close()


def error_code(body: bytes) -> str:
    return ElementTree.fromstring(body).findtext("Code") or ""


# --------------------------------------------------------------------------------------------------------------
# basic object operations


def test_put_get_head_delete(bucket: oss2.Bucket, server: OssServer) -> None:
    data = b"hello oss " * 100
    result = bucket.put_object("dir/hello.txt", data, headers={"x-oss-meta-color": "blue", "Cache-Control": "no-cache"})
    assert result.status == 200
    assert result.etag == md5_hex(data)
    assert result.crc == oss_crc(data)
    assert result.request_id

    got = bucket.get_object("dir/hello.txt")
    assert got.read() == data
    assert got.status == 200
    assert got.etag == md5_hex(data)
    assert got.content_type == "text/plain"  # oss2 sets it from the extension
    assert got.headers["x-oss-meta-color"] == "blue"
    assert got.headers["Cache-Control"] == "no-cache"
    assert got.object_type == "Normal"
    assert got.server_crc == oss_crc(data)

    head = bucket.head_object("dir/hello.txt")
    assert head.content_length == len(data)
    assert head.etag == md5_hex(data)
    assert head.last_modified == pytest.approx(time.time(), abs=5)
    assert head.headers["x-oss-meta-color"] == "blue"

    meta = bucket.get_object_meta("dir/hello.txt")
    assert meta.content_length == len(data)
    assert meta.etag == md5_hex(data)
    assert bucket.object_exists("dir/hello.txt")

    bucket.put_object("dir/hello.txt", b"v2")  # overwrite
    assert bucket.get_object("dir/hello.txt").read() == b"v2"

    assert bucket.delete_object("dir/hello.txt").status == 204
    assert bucket.delete_object("dir/hello.txt").status == 204  # deleting a missing key succeeds
    assert not bucket.object_exists("dir/hello.txt")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object("dir/hello.txt")
    with pytest.raises(oss2.exceptions.NoSuchKey):  # HEAD: told apart through the x-oss-err header
        bucket.head_object("dir/hello.txt")
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.get_object_meta("dir/hello.txt")
    assert server.object_keys(BUCKET) == []


def test_empty_object_and_content_md5(bucket: oss2.Bucket) -> None:
    bucket.put_object("empty", b"")
    assert bucket.get_object("empty").read() == b""
    assert bucket.head_object("empty").content_length == 0
    good = base64.b64encode(hashlib.md5(b"abc").digest()).decode()
    bucket.put_object("md5", b"abc", headers={"Content-MD5": good})
    with pytest.raises(oss2.exceptions.InvalidDigest):
        bucket.put_object("md5", b"abd", headers={"Content-MD5": good})
    assert bucket.get_object("md5").read() == b"abc"


def test_no_such_bucket(server: OssServer) -> None:
    missing = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, "no-such-bucket")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.get_object("k")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.put_object("k", b"x")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.head_object("k")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.object_exists("k")
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        missing.list_objects_v2()


def test_head_404_carries_x_oss_err(server: OssServer) -> None:
    status, headers, body = raw_request(server, "HEAD", f"/{BUCKET}/missing")
    assert status == 404 and body == b""
    assert headers["x-oss-request-id"]
    assert error_code(base64.b64decode(headers["x-oss-err"])) == "NoSuchKey"
    status, headers, body = raw_request(server, "GET", f"/{BUCKET}/missing")
    assert status == 404 and error_code(body) == "NoSuchKey"
    root = ElementTree.fromstring(body)
    assert root.findtext("RequestId") == headers["x-oss-request-id"]


def test_bucket_info_and_buckets(bucket: oss2.Bucket, server: OssServer) -> None:
    info = bucket.get_bucket_info()
    assert info.name == BUCKET
    assert bucket.get_bucket_location().location == "oss-cn-hangzhou"
    names = [b.name for b in oss2.Service(oss2.Auth(AK, SK), server.endpoint).list_buckets().buckets]
    assert names == ["other-bucket", BUCKET]
    extra = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, "made-in-test")
    extra.create_bucket()
    extra.put_object("k", b"v")
    with pytest.raises(oss2.exceptions.BucketNotEmpty):
        extra.delete_bucket()
    extra.delete_object("k")
    extra.delete_bucket()
    with pytest.raises(oss2.exceptions.NoSuchBucket):
        extra.get_bucket_info()


# --------------------------------------------------------------------------------------------------------------
# ranges and preconditions

DATA_1000 = bytes(range(256)) * 3 + bytes(232)


@pytest.mark.parametrize(
    ("range_header", "standard", "status", "expected"),
    [
        ("bytes=0-499", False, 206, slice(0, 500)),
        ("bytes=500-999", False, 206, slice(500, 1000)),
        ("bytes=500-", False, 206, slice(500, 1000)),
        ("bytes=-300", False, 206, slice(700, 1000)),
        ("bytes=0-", False, 206, slice(0, 1000)),
        # OSS quirk: an invalid or unsatisfiable range is ignored, the whole object comes back with 200
        ("bytes=0-1000", False, 200, slice(0, 1000)),
        ("bytes=1000-2000", False, 200, slice(0, 1000)),
        ("bytes=1000-", False, 200, slice(0, 1000)),
        ("bytes=-2000", False, 200, slice(0, 1000)),
        ("byte=0-499", False, 200, slice(0, 1000)),
        ("bytes=9-3", False, 200, slice(0, 1000)),
        ("bytes=0-9,20-29", False, 206, slice(0, 10)),
        # x-oss-range-behavior: standard -> RFC 7233 behaviour
        ("bytes=0-499", True, 206, slice(0, 500)),
        ("bytes=500-2000", True, 206, slice(500, 1000)),
        ("bytes=-2000", True, 206, slice(0, 1000)),
        ("bytes=1000-2000", True, 416, None),
        ("bytes=1000-", True, 416, None),
        ("bytes=-0", True, 416, None),
        ("bytes=0-9,20-29", True, 416, None),
        ("byte=0-499", True, 200, slice(0, 1000)),
    ],
)
def test_range_get(bucket: oss2.Bucket, range_header: str, standard: bool, status: int, expected: slice | None) -> None:
    bucket.put_object("r", DATA_1000)
    headers = {"Range": range_header}
    if standard:
        headers["x-oss-range-behavior"] = "standard"
    if status == 416:
        with pytest.raises(oss2.exceptions.ServerError) as info:
            bucket.get_object("r", headers=headers)
        assert (info.value.status, info.value.code) == (416, "InvalidRange")
        return
    assert expected is not None
    result = bucket.get_object("r", headers=headers)
    assert result.status == status
    assert result.read() == DATA_1000[expected]
    if status == 206:
        assert result.content_range == f"bytes {expected.start}-{expected.stop - 1}/1000"
    else:
        assert result.content_range is None


def test_range_get_with_oss2_byte_range(bucket: oss2.Bucket) -> None:
    bucket.put_object("r", DATA_1000)
    assert bucket.get_object("r", byte_range=(10, 19)).read() == DATA_1000[10:20]
    assert bucket.get_object("r", byte_range=(990, None)).read() == DATA_1000[990:]
    assert bucket.get_object("r", byte_range=(None, 5)).read() == DATA_1000[-5:]
    bucket.put_object("empty", b"")
    assert bucket.get_object("empty", byte_range=(0, 10)).read() == b""  # quirk: ignored, 200


def test_read_preconditions(bucket: oss2.Bucket) -> None:
    etag = bucket.put_object("p", b"payload").etag
    assert bucket.get_object("p", headers={"If-Match": etag}).read() == b"payload"
    assert bucket.get_object("p", headers={"If-Match": f'"{etag}"'}).read() == b"payload"
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("p", headers={"If-Match": "0" * 32})
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("p", headers={"If-None-Match": f'"{etag}"'})
    future = oss2.utils.http_date(time.time() + 3600)
    past = oss2.utils.http_date(time.time() - 3600)
    with pytest.raises(oss2.exceptions.NotModified):
        bucket.get_object("p", headers={"If-Modified-Since": future})
    assert bucket.get_object("p", headers={"If-Modified-Since": past}).read() == b"payload"
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.get_object("p", headers={"If-Unmodified-Since": past})


def test_resumable_download_uses_if_match(bucket: oss2.Bucket, tmp_path: os.PathLike[str]) -> None:
    data = os.urandom(300 * 1024)
    bucket.put_object("rd", data)
    target = os.path.join(tmp_path, "rd.bin")
    oss2.resumable_download(
        bucket,
        "rd",
        target,
        multiget_threshold=100 * 1024,
        part_size=100 * 1024,
        num_threads=2,
        store=oss2.ResumableDownloadStore(root=str(tmp_path)),
    )
    with open(target, "rb") as f:
        assert f.read() == data


# --------------------------------------------------------------------------------------------------------------
# listing


def _seed(server: OssServer, keys: list[str], data: bytes = b"x") -> None:
    """Put many keys over HTTP with a few threads (one oss2 Bucket per thread)."""
    local = threading.local()

    def put(key: str) -> None:
        if not hasattr(local, "bucket"):
            local.bucket = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
        local.bucket.put_object(key, data)

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(put, keys))


def test_list_paging_v1_and_v2(bucket: oss2.Bucket, server: OssServer) -> None:
    keys = [f"k/{i:05d}" for i in range(1005)]
    _seed(server, keys)

    pages = []
    token = ""
    while True:
        page = bucket.list_objects_v2(prefix="k/", continuation_token=token, max_keys=100)
        pages.append([o.key for o in page.object_list])
        if not page.is_truncated:
            break
        token = page.next_continuation_token
    assert [len(p) for p in pages] == [100] * 10 + [5]
    assert [key for page in pages for key in page] == keys

    marker, listed, calls = "", [], 0
    while True:
        page = bucket.list_objects(prefix="k/", marker=marker, max_keys=100)
        calls += 1
        listed += [o.key for o in page.object_list]
        if not page.is_truncated:
            break
        marker = page.next_marker
    assert listed == keys and calls == 11

    assert [o.key for o in oss2.ObjectIteratorV2(bucket, max_keys=1000)] == keys
    first = bucket.list_objects_v2(max_keys=3).object_list[0]
    assert (first.type, first.size, first.storage_class, first.etag) == ("Normal", 1, "Standard", md5_hex(b"x"))
    assert first.last_modified == pytest.approx(time.time(), abs=60)
    assert [o.key for o in bucket.list_objects_v2(start_after="k/01000").object_list] == keys[1001:]
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.list_objects_v2(max_keys=1001)


def test_list_delimiter_and_prefixes(bucket: oss2.Bucket, server: OssServer) -> None:
    for key in ["a/1", "a/2", "a/b/3", "b", "c/4", "c/5/6", "d"]:
        bucket.put_object(key, b"v")
    top = bucket.list_objects_v2(delimiter="/")
    assert [o.key for o in top.object_list] == ["b", "d"]
    assert top.prefix_list == ["a/", "c/"]
    sub = bucket.list_objects(prefix="a/", delimiter="/")
    assert [o.key for o in sub.object_list] == ["a/1", "a/2"]
    assert sub.prefix_list == ["a/b/"]
    # paging one entry at a time never repeats a common prefix
    v2 = [o.key for o in oss2.ObjectIteratorV2(bucket, delimiter="/", max_keys=1)]
    v1 = [o.key for o in oss2.ObjectIterator(bucket, delimiter="/", max_keys=1)]
    assert v2 == v1 == ["a/", "b", "c/", "d"]
    assert [o.key for o in bucket.list_objects_v2(prefix="zzz").object_list] == []


WEIRD_KEYS = [
    "with space",
    "trailing space ",
    "ünïcødé/文件/🙂.bin",
    "a/b/c/deep.txt",
    "/leading-slash",
    "double//slash",
    "plus+and%percent",
    "query?hash#amp&eq=semi;colon",
    "xml<&>'\"chars",
    "tilde~star*paren()",
]


def test_weird_keys_round_trip(bucket: oss2.Bucket) -> None:
    for i, key in enumerate(WEIRD_KEYS):
        bucket.put_object(key, f"value {i}".encode())
    for i, key in enumerate(WEIRD_KEYS):
        assert bucket.get_object(key).read() == f"value {i}".encode()
        assert bucket.head_object(key).content_length == len(f"value {i}")
    assert sorted(o.key for o in oss2.ObjectIteratorV2(bucket)) == sorted(WEIRD_KEYS)
    assert sorted(o.key for o in oss2.ObjectIterator(bucket)) == sorted(WEIRD_KEYS)
    assert bucket.list_objects_v2(prefix="ünïcødé/", delimiter="/").prefix_list == ["ünïcødé/文件/"]
    deleted = bucket.batch_delete_objects(WEIRD_KEYS).deleted_keys
    assert sorted(deleted) == sorted(WEIRD_KEYS)
    assert list(oss2.ObjectIteratorV2(bucket)) == []


def test_batch_delete(bucket: oss2.Bucket, server: OssServer) -> None:
    for key in ["x1", "x2", "x3"]:
        bucket.put_object(key, b"v")
    result = bucket.batch_delete_objects(["x1", "x3", "never-existed"])
    assert sorted(result.deleted_keys) == ["never-existed", "x1", "x3"]
    assert server.object_keys(BUCKET) == ["x2"]

    body = b"<Delete><Quiet>false</Quiet><Object><Key>x2</Key></Object></Delete>"
    wrong = base64.b64encode(hashlib.md5(b"other").digest()).decode()
    status, _, resp = raw_request(
        server, "POST", f"/{BUCKET}/?delete", body=body, headers={"Content-MD5": wrong}, resource=f"/{BUCKET}/?delete"
    )
    assert (status, error_code(resp)) == (400, "InvalidDigest")
    assert server.object_keys(BUCKET) == ["x2"]
    good = base64.b64encode(hashlib.md5(body).digest()).decode()
    status, _, resp = raw_request(
        server, "POST", f"/{BUCKET}/?delete", body=body, headers={"Content-MD5": good}, resource=f"/{BUCKET}/?delete"
    )
    assert status == 200 and b"<Key>x2</Key>" in resp
    assert server.object_keys(BUCKET) == []


# --------------------------------------------------------------------------------------------------------------
# copy


def test_copy_object(bucket: oss2.Bucket, server: OssServer) -> None:
    data = os.urandom(50_000)
    src = bucket.put_object("src.bin", data, headers={"x-oss-meta-a": "1"})
    result = bucket.copy_object(BUCKET, "src.bin", "dst/copy.bin")
    assert result.etag == src.etag
    copied = bucket.get_object("dst/copy.bin")
    assert copied.read() == data
    assert copied.headers["x-oss-meta-a"] == "1"
    assert copied.server_crc == oss_crc(data)

    bucket.copy_object(
        BUCKET, "src.bin", "replaced", headers={"x-oss-metadata-directive": "REPLACE", "x-oss-meta-b": "2"}
    )
    head = bucket.head_object("replaced")
    assert head.headers.get("x-oss-meta-b") == "2" and "x-oss-meta-a" not in head.headers

    other = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, "other-bucket")
    other.copy_object(BUCKET, "src.bin", "cross ü")
    assert other.get_object("cross ü").read() == data

    bucket.put_object("src.bin", b"new")  # the copies keep the old bytes
    assert bucket.get_object("dst/copy.bin").read() == data

    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.copy_object(BUCKET, "missing", "x")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.copy_object(BUCKET, "src.bin", "replaced", headers={"x-oss-forbid-overwrite": "true"})
    assert (info.value.status, info.value.code) == (409, "FileAlreadyExists")
    with pytest.raises(oss2.exceptions.PreconditionFailed):
        bucket.copy_object(BUCKET, "src.bin", "y", headers={"x-oss-copy-source-if-match": "0" * 32})


# --------------------------------------------------------------------------------------------------------------
# multipart

KIB = 1024


def test_multipart_upload(bucket: oss2.Bucket, server: OssServer) -> None:
    parts_data = [os.urandom(100 * KIB), os.urandom(150 * KIB), b"tail bytes"]
    upload_id = bucket.init_multipart_upload("mp/object.bin", headers={"x-oss-meta-m": "v"}).upload_id
    assert server.multipart_uploads(BUCKET) == [("mp/object.bin", upload_id)]
    parts = []
    for number, chunk in enumerate(parts_data, 1):
        r = bucket.upload_part("mp/object.bin", upload_id, number, chunk)
        assert r.etag == md5_hex(chunk) and r.crc == oss_crc(chunk)
        parts.append(PartInfo(number, r.etag, size=len(chunk), part_crc=r.crc))
    # oss2 combines the part CRCs and checks them against the response header
    result = bucket.complete_multipart_upload("mp/object.bin", upload_id, parts)
    data = b"".join(parts_data)
    expected_etag = hashlib.md5(b"".join(hashlib.md5(c).digest() for c in parts_data)).hexdigest().upper() + "-3"
    assert result.etag == expected_etag
    assert result.crc == oss_crc(data)
    got = bucket.get_object("mp/object.bin")
    assert got.read() == data
    assert got.object_type == "Multipart"
    assert got.headers["x-oss-meta-m"] == "v"
    assert got.etag == expected_etag
    assert server.multipart_uploads(BUCKET) == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.complete_multipart_upload("mp/object.bin", upload_id, parts)


def test_multipart_entity_too_small_at_complete(bucket: oss2.Bucket, server: OssServer) -> None:
    upload_id = bucket.init_multipart_upload("small").upload_id
    p1 = bucket.upload_part("small", upload_id, 1, b"a" * KIB)  # accepted now, refused at complete
    p2 = bucket.upload_part("small", upload_id, 2, b"b" * KIB)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("small", upload_id, [PartInfo(1, p1.etag), PartInfo(2, p2.etag)])
    assert (info.value.status, info.value.code) == (400, "EntityTooSmall")
    assert server.multipart_uploads(BUCKET) == [("small", upload_id)]  # still there
    # a single small part is the last part: allowed
    bucket.complete_multipart_upload("small", upload_id, [PartInfo(1, p1.etag)])
    assert bucket.get_object("small").read() == b"a" * KIB


def test_multipart_invalid_part_and_order(bucket: oss2.Bucket, server: OssServer) -> None:
    upload_id = bucket.init_multipart_upload("bad").upload_id
    p1 = bucket.upload_part("bad", upload_id, 1, b"a" * 100 * KIB)
    p2 = bucket.upload_part("bad", upload_id, 2, b"b")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("bad", upload_id, [PartInfo(1, "0" * 32), PartInfo(2, p2.etag)])
    assert (info.value.status, info.value.code) == (400, "InvalidPart")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("bad", upload_id, [PartInfo(1, p1.etag), PartInfo(3, p2.etag)])
    assert info.value.code == "InvalidPart"
    # oss2 sorts the parts itself, so send the out-of-order list raw
    xml = (
        f'<CompleteMultipartUpload><Part><PartNumber>2</PartNumber><ETag>"{p2.etag}"</ETag></Part>'
        f'<Part><PartNumber>1</PartNumber><ETag>"{p1.etag}"</ETag></Part></CompleteMultipartUpload>'
    )
    status, _, body = raw_request(
        server,
        "POST",
        f"/{BUCKET}/bad?uploadId={upload_id}",
        body=xml.encode(),
        resource=f"/{BUCKET}/bad?uploadId={upload_id}",
    )
    assert (status, error_code(body)) == (400, "InvalidPartOrder")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("bad", upload_id, [PartInfo(1, p1.etag), PartInfo(1, p1.etag)])
    assert info.value.code == "InvalidPartOrder"
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.upload_part("bad", upload_id, 10001, b"x")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("other-key", upload_id, 1, b"x")


def test_multipart_abort(bucket: oss2.Bucket, server: OssServer) -> None:
    upload_id = bucket.init_multipart_upload("aborted").upload_id
    bucket.upload_part("aborted", upload_id, 1, b"x" * 10)
    assert bucket.abort_multipart_upload("aborted", upload_id).status == 204
    assert server.multipart_uploads(BUCKET) == []
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.upload_part("aborted", upload_id, 2, b"y")
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.abort_multipart_upload("aborted", upload_id)
    with pytest.raises(oss2.exceptions.NoSuchUpload):
        bucket.list_parts("aborted", upload_id)
    assert not bucket.object_exists("aborted")


def test_list_parts_paged(bucket: oss2.Bucket) -> None:
    upload_id = bucket.init_multipart_upload("lp").upload_id
    for number in [3, 1, 5, 2, 4]:
        bucket.upload_part("lp", upload_id, number, bytes([number]) * number)
    page = bucket.list_parts("lp", upload_id, max_parts=2)
    assert [p.part_number for p in page.parts] == [1, 2]
    assert page.is_truncated and page.next_marker == "2"
    page = bucket.list_parts("lp", upload_id, marker="4", max_parts=2)
    assert [p.part_number for p in page.parts] == [5] and not page.is_truncated
    listed = list(oss2.PartIterator(bucket, "lp", upload_id, max_parts=2))
    assert [(p.part_number, p.size, p.etag) for p in listed] == [(n, n, md5_hex(bytes([n]) * n)) for n in range(1, 6)]
    assert all(p.last_modified == pytest.approx(time.time(), abs=60) for p in listed)


def test_list_multipart_uploads_paged(bucket: oss2.Bucket, server: OssServer) -> None:
    ids = [
        ("a/1", bucket.init_multipart_upload("a/1").upload_id),
        ("a/2", bucket.init_multipart_upload("a/2").upload_id),
        ("b", bucket.init_multipart_upload("b").upload_id),
        ("b", bucket.init_multipart_upload("b").upload_id),
        ("c d", bucket.init_multipart_upload("c d").upload_id),
    ]
    assert server.multipart_uploads(BUCKET) == sorted(ids)
    page = bucket.list_multipart_uploads(max_uploads=2)
    assert [(u.key, u.upload_id) for u in page.upload_list] == ids[:2]
    assert page.is_truncated and page.next_key_marker == "a/2" and page.next_upload_id_marker == ids[1][1]
    page = bucket.list_multipart_uploads(key_marker="b", upload_id_marker=ids[2][1], max_uploads=2)
    assert [(u.key, u.upload_id) for u in page.upload_list] == ids[3:5]
    assert not page.is_truncated
    every = [(u.key, u.upload_id) for u in oss2.MultipartUploadIterator(bucket, max_uploads=2)]
    assert every == ids
    assert all(u.initiation_date == pytest.approx(time.time(), abs=60) for u in oss2.MultipartUploadIterator(bucket))
    assert [u.key for u in bucket.list_multipart_uploads(prefix="a/").upload_list] == ["a/1", "a/2"]
    grouped = bucket.list_multipart_uploads(delimiter="/")
    assert grouped.prefix_list == ["a/"]
    assert [u.key for u in grouped.upload_list] == ["b", "b", "c d"]
    assert [u.key for u in bucket.list_multipart_uploads(key_marker="b").upload_list] == ["c d"]


def test_upload_part_copy_with_ranges(bucket: oss2.Bucket, server: OssServer) -> None:
    source = os.urandom(300 * KIB)
    bucket.put_object("copy-src", source)
    upload_id = bucket.init_multipart_upload("composed").upload_id
    r1 = bucket.upload_part_copy(BUCKET, "copy-src", (0, 100 * KIB - 1), "composed", upload_id, 1)
    r2 = bucket.upload_part_copy(BUCKET, "copy-src", (200 * KIB, 300 * KIB - 1), "composed", upload_id, 2)
    r3 = bucket.upload_part("composed", upload_id, 3, b"own bytes")
    assert r1.etag == md5_hex(source[: 100 * KIB])
    parts = [PartInfo(1, r1.etag), PartInfo(2, r2.etag), PartInfo(3, r3.etag)]
    bucket.complete_multipart_upload("composed", upload_id, parts)
    expected = source[: 100 * KIB] + source[200 * KIB :] + b"own bytes"
    assert bucket.get_object("composed").read() == expected

    upload_id = bucket.init_multipart_upload("whole").upload_id
    whole = bucket.upload_part_copy(BUCKET, "copy-src", None, "whole", upload_id, 1)
    bucket.complete_multipart_upload("whole", upload_id, [PartInfo(1, whole.etag)])
    assert bucket.get_object("whole").read() == source

    upload_id = bucket.init_multipart_upload("bad-range").upload_id
    with pytest.raises(oss2.exceptions.InvalidArgument):
        bucket.upload_part_copy(BUCKET, "copy-src", (0, 300 * KIB), "bad-range", upload_id, 1)
    with pytest.raises(oss2.exceptions.NoSuchKey):
        bucket.upload_part_copy(BUCKET, "missing", (0, 10), "bad-range", upload_id, 1)


def test_min_part_size_is_configurable() -> None:
    with OssServer(min_part_size=10) as srv:
        b = oss2.Bucket(oss2.Auth("test-ak", "test-sk"), srv.endpoint, "test-bucket")
        upload_id = b.init_multipart_upload("k").upload_id
        p1 = b.upload_part("k", upload_id, 1, b"0123456789")
        p2 = b.upload_part("k", upload_id, 2, b"x")
        b.complete_multipart_upload("k", upload_id, [PartInfo(1, p1.etag), PartInfo(2, p2.etag)])
        assert b.get_object("k").read() == b"0123456789x"


# --------------------------------------------------------------------------------------------------------------
# CRC, overwrite protection, authentication


def test_crc64() -> None:
    assert crc64ecma(b"123456789") == 0x995DC9BBDF1939FA
    a, b = os.urandom(1000), os.urandom(3333)
    assert crc64ecma(a + b) == oss_crc(a + b) == crc64ecma(b, crc64ecma(a))
    assert crc64_combine(crc64ecma(a), crc64ecma(b), len(b)) == crc64ecma(a + b)


def test_oss2_detects_a_crc_mismatch(bucket: oss2.Bucket, server: OssServer) -> None:
    def bad_crc(handler: OssRequestHandler) -> bool:
        if handler.command != "PUT":
            return False
        handler.read_body()
        handler.send_response(200)
        for name, value in [
            ("x-oss-request-id", handler.request_id),
            ("ETag", '"00"'),
            ("x-oss-hash-crc64ecma", "12345"),
            ("Content-Length", "0"),
        ]:
            handler.send_header(name, value)
        handler.end_headers()
        return True

    server.fault_hook = bad_crc
    with pytest.raises(oss2.exceptions.InconsistentError):
        bucket.put_object("crc", b"data")
    server.fault_hook = None
    assert bucket.put_object("crc", b"data").crc == oss_crc(b"data")


def test_forbid_overwrite(bucket: oss2.Bucket) -> None:
    forbid = {"x-oss-forbid-overwrite": "true"}
    bucket.put_object("once", b"first", headers=forbid)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.put_object("once", b"second", headers=forbid)
    assert (info.value.status, info.value.code) == (409, "FileAlreadyExists")
    assert bucket.get_object("once").read() == b"first"
    bucket.put_object("once", b"third", headers={"x-oss-forbid-overwrite": "false"})
    assert bucket.get_object("once").read() == b"third"

    upload_id = bucket.init_multipart_upload("mp-once").upload_id
    part = bucket.upload_part("mp-once", upload_id, 1, b"p")
    bucket.put_object("mp-once", b"raced")
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.complete_multipart_upload("mp-once", upload_id, [PartInfo(1, part.etag)], headers=forbid)
    assert info.value.code == "FileAlreadyExists"
    with pytest.raises(oss2.exceptions.ServerError):
        bucket.init_multipart_upload("mp-once", headers=forbid)


def test_conditional_writes_are_refused_loudly(bucket: oss2.Bucket) -> None:
    # Write preconditions are not an OSS feature oss2 knows; the server refuses them instead of ignoring them.
    bucket.put_object("cond", b"v1")
    for headers in ({"If-None-Match": "*"}, {"If-Match": bucket.head_object("cond").etag}):
        with pytest.raises(oss2.exceptions.ServerError) as info:
            bucket.put_object("cond", b"v2", headers=headers)
        assert (info.value.status, info.value.code) == (400, "NotImplemented")
    assert bucket.get_object("cond").read() == b"v1"


def test_wrong_credentials_refused(server: OssServer) -> None:
    good = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
    good.put_object("secret", b"s")
    wrong_secret = oss2.Bucket(oss2.Auth(AK, "wrong"), server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        wrong_secret.get_object("secret")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        wrong_secret.put_object("secret", b"overwritten")
    with pytest.raises(oss2.exceptions.SignatureDoesNotMatch):
        wrong_secret.list_objects_v2()
    wrong_key = oss2.Bucket(oss2.Auth("nobody", SK), server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.ServerError) as info:
        wrong_key.get_object("secret")
    assert (info.value.status, info.value.code) == (403, "InvalidAccessKeyId")
    anonymous = oss2.Bucket(oss2.AnonymousAuth(), server.endpoint, BUCKET)
    with pytest.raises(oss2.exceptions.AccessDenied):
        anonymous.get_object("secret")
    assert good.get_object("secret").read() == b"s"


def test_signature_covers_oss_headers_and_subresources(server: OssServer) -> None:
    date = oss2.utils.http_date()
    # x-oss-* headers are signed: change one after signing
    sts = f"PUT\n\n\n{date}\nx-oss-meta-a:1\n/{BUCKET}/k"
    headers = {"Date": date, "x-oss-meta-a": "2", "Authorization": f"OSS {AK}:{v1_signature(sts)}"}
    conn = http.client.HTTPConnection(urlsplit(server.endpoint).netloc, timeout=10)
    conn.request("PUT", f"/{BUCKET}/k", body=b"v", headers=headers)
    resp = conn.getresponse()
    assert (resp.status, error_code(resp.read())) == (403, "SignatureDoesNotMatch")
    # a request signed an hour ago is refused for clock skew
    old = oss2.utils.http_date(time.time() - 3600)
    old_signature = v1_signature(f"GET\n\n\n{old}\n/{BUCKET}/k")
    headers = {"Date": old, "Authorization": f"OSS {AK}:{old_signature}"}
    conn.request("GET", f"/{BUCKET}/k", headers=headers)
    resp = conn.getresponse()
    assert (resp.status, error_code(resp.read())) == (403, "RequestTimeTooSkewed")
    conn.close()
    # our own signer agrees with the server, including continuation-token as a sub-resource
    status, _, body = raw_request(
        server, "GET", f"/{BUCKET}/?list-type=2&continuation-token=", resource=f"/{BUCKET}/?continuation-token"
    )
    assert status == 200, body


def test_signed_url(bucket: oss2.Bucket, server: OssServer) -> None:
    bucket.put_object("shared/file.txt", b"shared content")
    url = bucket.sign_url("GET", "shared/file.txt", 60)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.status == 200
        assert resp.read() == b"shared content"
    assert bucket.get_object_with_url(url).read() == b"shared content"

    url_with_override = bucket.sign_url(
        "GET", "shared/file.txt", 60, params={"response-content-disposition": "attachment"}
    )
    with urllib.request.urlopen(url_with_override, timeout=10) as resp:
        assert resp.headers["Content-Disposition"] == "attachment"

    tampered = url.replace("Signature=", "Signature=A")
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(tampered, timeout=10)
    assert info.value.code == 403 and error_code(info.value.read()) == "SignatureDoesNotMatch"

    other_key = url.replace("shared%2Ffile.txt", "shared%2Fother.txt")
    assert other_key != url
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(other_key, timeout=10)
    assert info.value.code == 403

    expired = bucket.sign_url("GET", "shared/file.txt", -10)
    with pytest.raises(urllib.error.HTTPError) as info:
        urllib.request.urlopen(expired, timeout=10)
    assert info.value.code == 403 and error_code(info.value.read()) == "AccessDenied"

    put_url = bucket.sign_url("PUT", "uploaded.bin", 60)
    bucket.put_object_with_url(put_url, b"via signed url")
    assert bucket.get_object("uploaded.bin").read() == b"via signed url"


# --------------------------------------------------------------------------------------------------------------
# transport


def test_large_object_round_trip(bucket: oss2.Bucket, tmp_path: os.PathLike[str]) -> None:
    data = os.urandom(20 * 1024 * 1024)
    result = bucket.put_object("big.bin", data)
    assert result.crc == oss_crc(data)
    assert bucket.get_object("big.bin").read() == data
    target = os.path.join(tmp_path, "big.bin")
    bucket.get_object_to_file("big.bin", target)  # oss2 verifies the whole-object CRC here
    assert os.path.getsize(target) == len(data)
    assert (
        bucket.get_object("big.bin", byte_range=(10 * 1024 * 1024, 10 * 1024 * 1024 + 9)).read()
        == data[10 * 1024 * 1024 : 10 * 1024 * 1024 + 10]
    )


def test_chunked_upload(bucket: oss2.Bucket) -> None:
    chunks = [os.urandom(70_000) for _ in range(5)]
    result = bucket.put_object("chunked", iter(chunks))  # no length: requests sends Transfer-Encoding: chunked
    data = b"".join(chunks)
    assert result.crc == oss_crc(data)
    assert bucket.get_object("chunked").read() == data


def test_keep_alive_survives_errors(server: OssServer) -> None:
    conn = http.client.HTTPConnection(urlsplit(server.endpoint).netloc, timeout=10)
    # an unauthenticated PUT with a body is refused, and its body is drained so the connection stays usable
    conn.request("PUT", f"/{BUCKET}/k", body=os.urandom(1024 * 1024), headers={"Date": oss2.utils.http_date()})
    resp = conn.getresponse()
    assert (resp.status, error_code(resp.read())) == (403, "AccessDenied")
    assert resp.getheader("x-oss-request-id")
    status, _, _ = raw_request(server, "PUT", f"/{BUCKET}/k", body=b"value", conn=conn)
    assert status == 200
    status, _, body = raw_request(server, "GET", f"/{BUCKET}/k", conn=conn)
    assert (status, body) == (200, b"value")
    conn.close()


def test_concurrent_requests(server: OssServer) -> None:
    payloads = [bytes([i]) * (64 * KIB + i) for i in range(8)]

    def worker(i: int) -> None:
        b = oss2.Bucket(oss2.Auth(AK, SK), server.endpoint, BUCKET)
        for _ in range(5):
            b.put_object(f"own/{i}", payloads[i])
            b.put_object("shared", payloads[i])
            assert b.get_object(f"own/{i}").read() == payloads[i]
            assert b.get_object("shared").read() in payloads  # always one whole version

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(worker, range(8)))
    assert server.object_keys(BUCKET) == [f"own/{i}" for i in range(8)] + ["shared"]


def test_request_log_fault_hook_and_reset(bucket: oss2.Bucket, server: OssServer) -> None:
    bucket.put_object("a b", b"1")
    bucket.get_object("a b").read()
    assert server.request_log == [("PUT", f"/{BUCKET}/a%20b"), ("GET", f"/{BUCKET}/a%20b")]

    calls = []

    def fail_first_get(handler: OssRequestHandler) -> bool:
        calls.append((handler.command, handler.oss_bucket, handler.oss_key))
        if handler.command == "GET" and len(calls) == 1:
            handler.send_oss_error(503, "ServiceUnavailable", "injected")
            return True
        return False

    server.fault_hook = fail_first_get
    with pytest.raises(oss2.exceptions.ServerError) as info:
        bucket.get_object("a b")
    assert (info.value.status, info.value.code) == (503, "ServiceUnavailable")
    assert bucket.get_object("a b").read() == b"1"
    assert calls == [("GET", BUCKET, "a b")] * 2

    upload_id = bucket.init_multipart_upload("left").upload_id
    assert server.multipart_uploads(BUCKET) == [("left", upload_id)]
    server.reset()
    assert server.multipart_uploads(BUCKET) == []
    assert server.object_keys(BUCKET) == []
    assert server.request_log == []
    assert server.fault_hook is None
    assert bucket.get_bucket_info().name == BUCKET  # buckets survive a reset
