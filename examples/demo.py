"""A short tour on the default store: the filesystem driver in the per-user data folder."""

import blobdrivers
from blobdrivers.errors import UnsupportedMethodError

store = blobdrivers.create("filesystem")  # rootdirectory defaults to ~/.local/share/blobdrivers
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
