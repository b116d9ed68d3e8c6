"""A gzip decompressor that verifies every member, for streams read once.

`tarfile`'s own gzip layer (modes "r|gz", "r:gz") never reads a member's
trailer, so a stream whose compressed bytes were damaged decompresses to
garbage that is accepted as long as the tar headers it happens to hit look
like the end of the archive. `GzipStreamReader` decompresses a stream of one
or more gzip members (RFC 1952; `pigz` and some mirrors concatenate members)
and checks, for each member, the header, the deflate data, and the trailer's
CRC32 and ISIZE against what it decompressed. After the last member only
zero padding may follow; anything else is an error, as is a stream that ends
inside a member. Every error is an `ArchiveError` naming the stream, the
member and the byte offset (in the compressed stream) where it was found.
"""

import struct
import zlib

from heldout import errors
from heldout.released import streams

_MAGIC = b"\x1f\x8b"
_DEFLATE = 8
_FHCRC, _FEXTRA, _FNAME, _FCOMMENT = 0x02, 0x04, 0x08, 0x10
_RESERVED_FLAGS = 0xe0
_MAX_HEADER_FIELD = 1 << 16  # A file name or comment longer than this is not a header.


class GzipStreamReader:
  """Reads the decompressed bytes of a gzip stream, verifying each member.

  Attributes:
    members: gzip members completed (trailer verified) so far.
    compressed_offset: bytes of the compressed stream consumed so far.
    uncompressed_offset: decompressed bytes returned so far.
  """

  def __init__(self, fileobj, name="gzip stream", read_size=1 << 20):
    """Wraps `fileobj`.

    Args:
      fileobj: the compressed stream; only `read(size)` is used.
      name: what to call the stream in error messages (the archive's name).
      read_size: bytes read from `fileobj` at a time.
    """
    if read_size <= 0:
      raise ValueError("`read_size` must be positive, got {}".format(read_size))
    self._raw = fileobj
    self._name = name
    self._read_size = int(read_size)
    self._buf = b""
    self._raw_eof = False
    self._state = "header"  # "header", "data" or "done".
    self._decompressor = None
    self._crc = 0
    self._size = 0
    self._member_start = 0
    self.members = 0
    self.compressed_offset = 0
    self.uncompressed_offset = 0

  def readable(self):
    return True

  def _error(self, what, offset=None):
    return errors.ArchiveError("{}, compressed byte {}: {}".format(
        self._name, self.compressed_offset if offset is None else offset, what))

  def _fill(self):
    """Reads more compressed bytes; False at the end of the stream."""
    if self._raw_eof:
      return False
    chunk = self._raw.read(self._read_size)
    if not chunk:
      self._raw_eof = True
      return False
    self._buf = self._buf + chunk if self._buf else chunk
    return True

  def _need(self, n):
    """Ensures `n` buffered bytes; False when the stream ends first."""
    while len(self._buf) < n:
      if not self._fill():
        return False
    return True

  def _take(self, n, what):
    if not self._need(n):
      raise self._error("the stream ends inside the {} of gzip member {} (truncated)".format(
          what, self.members + 1), self.compressed_offset + len(self._buf))
    data, self._buf = self._buf[:n], self._buf[n:]
    self.compressed_offset += n
    return data

  def _take_zero_terminated(self, what):
    while True:
      end = self._buf.find(b"\0")
      if end >= 0:
        return self._take(end + 1, what)
      if len(self._buf) > _MAX_HEADER_FIELD:
        raise self._error("gzip member {}: header {} longer than {} bytes".format(
            self.members + 1, what, _MAX_HEADER_FIELD))
      if not self._fill():
        self._take(len(self._buf) + 1, what)  # Raises: truncated.

  def _skip_zero_padding(self):
    """After the last member: only zero bytes may follow, to the end."""
    while True:
      stripped = self._buf.lstrip(b"\0")
      if stripped:
        offset = self.compressed_offset + len(self._buf) - len(stripped)
        raise self._error(
            "non-zero data after gzip member {} that is not a gzip member "
            "(trailing garbage)".format(self.members), offset)
      self.compressed_offset += len(self._buf)
      self._buf = b""
      if not self._fill():
        return

  def _start_member(self):
    """Parses the next member's header; False at the (verified) end of the stream."""
    if not self._need(1):
      if self.members == 0:
        raise self._error("empty stream: not a gzip file")
      return False
    if self.members and self._buf[:1] == b"\0":
      self._skip_zero_padding()
      return False
    self._need(2)
    if self._buf[:2] != _MAGIC:
      if self.members == 0:
        raise self._error("not a gzip file (it starts with {!r})".format(self._buf[:8]))
      raise self._error(
          "data after gzip member {} is neither a gzip member nor zero padding "
          "(trailing garbage)".format(self.members))
    self._member_start = self.compressed_offset
    header = self._take(10, "header")
    method, flags = header[2], header[3]
    if method != _DEFLATE:
      raise self._error("gzip member {}: unknown compression method {}".format(
          self.members + 1, method), self._member_start)
    if flags & _RESERVED_FLAGS:
      raise self._error("gzip member {}: reserved header flags set (0x{:02x})".format(
          self.members + 1, flags), self._member_start)
    if flags & _FEXTRA:
      extra_len = self._take(2, "header")
      header += extra_len + self._take(struct.unpack("<H", extra_len)[0], "header")
    if flags & _FNAME:
      header += self._take_zero_terminated("file name")
    if flags & _FCOMMENT:
      header += self._take_zero_terminated("comment")
    if flags & _FHCRC:
      (stored,) = struct.unpack("<H", self._take(2, "header"))
      if stored != zlib.crc32(header) & 0xffff:
        raise self._error("gzip member {}: header CRC16 mismatch".format(self.members + 1),
                          self._member_start)
    self._decompressor = zlib.decompressobj(-zlib.MAX_WBITS)
    self._crc = 0
    self._size = 0
    self._state = "data"
    return True

  def _finish_member(self):
    trailer_offset = self.compressed_offset
    crc, isize = struct.unpack("<II", self._take(8, "trailer (CRC32 and size)"))
    member = "gzip member {} (from byte {})".format(self.members + 1, self._member_start)
    if crc != self._crc:
      raise self._error(
          "{}: CRC32 of the decompressed data is {:08x}, its trailer says {:08x}: "
          "the compressed data is corrupt".format(member, self._crc, crc), trailer_offset)
    if isize != self._size & 0xffffffff:
      raise self._error(
          "{}: {} bytes decompressed (mod 2^32: {}), its trailer says {}".format(
              member, self._size, self._size & 0xffffffff, isize), trailer_offset)
    self.members += 1
    self._decompressor = None
    self._state = "header"

  def read(self, size=-1):
    """Up to `size` decompressed bytes (all the rest when negative); b"" at the end.

    Raises:
      ArchiveError: for anything but a complete, verified gzip stream.
    """
    if size is None or size < 0:
      return streams.read_all(self.read)
    if size == 0:
      return b""
    while True:
      if self._state == "done":
        return b""
      if self._state == "header":
        if not self._start_member():
          self._state = "done"
          return b""
      if not self._buf:
        self._fill()  # At the end, zlib may still hold output it had no room for.
      before = len(self._buf)
      try:
        data = self._decompressor.decompress(self._buf, size)
      except zlib.error as e:
        raise self._error(
            "gzip member {} (from byte {}): corrupt deflate data in bytes {}-{} ({})".format(
                self.members + 1, self._member_start, self.compressed_offset,
                self.compressed_offset + before, e)) from None
      d = self._decompressor
      self._buf = d.unused_data if d.eof else d.unconsumed_tail
      self.compressed_offset += before - len(self._buf)
      if data:
        self._crc = zlib.crc32(data, self._crc)
        self._size += len(data)
      if d.eof:
        self._finish_member()
      elif not data and not self._buf and self._raw_eof:
        raise self._error(
            "the stream ends inside gzip member {} (from byte {}): truncated".format(
                self.members + 1, self._member_start))
      if data:
        self.uncompressed_offset += len(data)
        return data

  def readinto(self, buffer):
    data = self.read(len(buffer))
    buffer[:len(data)] = data
    return len(data)
