"""Tests of the verifying gzip stream reader."""

import gzip
import io
import struct
import zlib

from absl.testing import absltest
from absl.testing import parameterized

from heldout import errors
from heldout.released import gzip_stream

_DATA = bytes(range(256)) * 300 + b"tail" * 1000


def _read_all(data, read_size=1 << 20, size=1 << 16):
  reader = gzip_stream.GzipStreamReader(io.BytesIO(data), name="x.tar.gz",
                                        read_size=read_size)
  out = []
  while True:
    chunk = reader.read(size)
    if not chunk:
      return b"".join(out), reader
    out.append(chunk)


def _member(payload, flags=0, extra=b"", name=b"", comment=b"", header_crc=None):
  """A gzip member with the optional header fields of RFC 1952."""
  header = b"\x1f\x8b\x08" + bytes([flags]) + b"\0\0\0\0\0\xff"
  if flags & 0x04:
    header += struct.pack("<H", len(extra)) + extra
  if flags & 0x08:
    header += name + b"\0"
  if flags & 0x10:
    header += comment + b"\0"
  if flags & 0x02:
    crc16 = zlib.crc32(header) & 0xffff if header_crc is None else header_crc
    header += struct.pack("<H", crc16)
  compressor = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
  body = compressor.compress(payload) + compressor.flush()
  return header + body + struct.pack("<II", zlib.crc32(payload), len(payload) & 0xffffffff)


class GzipStreamReaderTest(parameterized.TestCase):

  @parameterized.named_parameters(
      ("one_member", 1 << 20, 1 << 16),
      ("tiny_reads", 7, 13),
      ("tiny_output", 1 << 20, 1))
  def test_round_trip(self, read_size, size):
    data, reader = _read_all(gzip.compress(_DATA), read_size, size)
    self.assertEqual(data, _DATA)
    self.assertEqual(reader.members, 1)
    self.assertEqual(reader.uncompressed_offset, len(_DATA))

  def test_concatenated_members_and_header_fields(self):
    parts = [_DATA[:100], _DATA[100:5000], b"", _DATA[5000:]]
    stream = (_member(parts[0], flags=0x08, name=b"a.tar")
              + _member(parts[1], flags=0x04 | 0x10, extra=b"xyz", comment=b"hi")
              + _member(parts[2], flags=0x02)
              + _member(parts[3], flags=0x1e, extra=b"e", name=b"n", comment=b"c"))
    for read_size in (5, 1 << 20):
      data, reader = _read_all(stream, read_size)
      self.assertEqual(data, _DATA)
      self.assertEqual(reader.members, 4)
      self.assertEqual(reader.compressed_offset, len(stream))

  def test_zero_padding_after_the_last_member(self):
    data, _ = _read_all(gzip.compress(_DATA) + b"\0" * 3000, read_size=1000)
    self.assertEqual(data, _DATA)

  def _assert_error(self, stream, pattern, read_size=1 << 20):
    with self.assertRaisesRegex(errors.ArchiveError, pattern):
      _read_all(stream, read_size)

  def test_crc_and_size_of_every_member_are_checked(self):
    good = _member(_DATA[:10])
    trailer = 2 * len(good) - 8
    for i, pattern in ((-8, "compressed byte {}: gzip member 2 .*CRC32".format(trailer)),
                       (-4, "gzip member 2 .*10 bytes decompressed .* trailer says")):
      bad = bytearray(good)
      bad[i] ^= 0x01
      for read_size in (3, 1 << 20):
        self._assert_error(good + bytes(bad), pattern, read_size)

  @parameterized.named_parameters(
      ("in_header", 5, "ends inside the header of gzip member 1"),
      ("in_data", 30, "ends inside gzip member 1"),
      ("in_trailer", -3, "ends inside the trailer"))
  def test_truncated(self, cut, pattern):
    self._assert_error(gzip.compress(_DATA)[:cut], pattern + ".*truncated")

  @parameterized.named_parameters(
      ("garbage", b"GARBAGE",
       "compressed byte {}: data after gzip member 1 .*trailing garbage"),
      ("zeros_then_garbage", b"\0\0\0x", "compressed byte {}: non-zero data after gzip"))
  def test_trailing_garbage(self, tail, pattern):
    good = gzip.compress(_DATA)
    offset = len(good) + tail.index(tail.lstrip(b"\0"))
    self._assert_error(good + tail, pattern.format(offset))

  def test_not_gzip(self):
    self._assert_error(b"", "empty stream")
    self._assert_error(b"PK\x03\x04 a zip", "compressed byte 0: not a gzip file")
    self._assert_error(b"\x1f\x8b\x07" + b"\0" * 20, "unknown compression method 7")
    self._assert_error(b"\x1f\x8b\x08\x80" + b"\0" * 20, "reserved header flags")
    self._assert_error(_member(b"x", flags=0x02, header_crc=1), "header CRC16 mismatch")

  def test_corrupt_deflate_data(self):
    bad = bytearray(gzip.compress(_DATA))
    bad[10] = 0xff  # The first deflate block header: an invalid block type.
    self._assert_error(bytes(bad), r"compressed byte \d+: gzip member 1 .*corrupt deflate")


if __name__ == "__main__":
  absltest.main()
