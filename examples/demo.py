"""A short tour on a filesystem store in a temporary folder, removed at the end (your default store is untouched)."""

import tempfile

import blobdrivers
from blobdrivers.errors import UnsupportedMethodError

folder = tempfile.TemporaryDirectory(prefix="blobdrivers-demo-")
# Without rootdirectory the filesystem driver uses the per-user default, ~/.local/share/blobdrivers.
store = blobdrivers.create("filesystem", {"rootdirectory": folder.name})
print(f"store: {store!r}")

store.put("/demo/hello.txt", b"hello, blob\n")
print("get  /demo/hello.txt ->", store.get("/demo/hello.txt"))
print("stat /demo/hello.txt ->", store.stat("/demo/hello.txt"))

with store.writer("/demo/layer") as writer:  # atomic: visible only when the block ends normally
    for _ in range(4):
        writer.write(b"x" * 1024 * 1024)
print("list /demo ->", store.list("/demo"), f"(layer: {store.stat('/demo/layer').size} bytes)")

store.cat("/demo/joined", ["/demo/hello.txt", "/demo/hello.txt"])
print("cat  ->", store.get("/demo/joined"))

try:
    print("url  ->", store.url_for("/demo/hello.txt"))
except UnsupportedMethodError as exc:
    print(f"url  -> {exc} (object stores give signed URLs: s3://, azure://, gs://, oss://)")

store.delete("/demo")
print("deleted /demo; store root now lists", store.list("/"))
folder.cleanup()
