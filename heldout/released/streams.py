"""What the byte streams of `heldout.released` share."""

CHUNK_SIZE = 1 << 20


def read_all(read, chunk_size: int = CHUNK_SIZE) -> bytes:
  """Everything `read(n)` returns until it returns b"" (a `read(-1)` for a
  stream whose `read` serves bounded sizes)."""
  chunks = []
  while True:
    chunk = read(chunk_size)
    if not chunk:
      return b"".join(chunks)
    chunks.append(chunk)
