"""One module per storage backend; the factory imports them lazily by name."""
