"""Fixed part of the sort target, run in the child process bench.py starts: it imports the
mutable `sort.py` and sorts what bench.py sends, one request at a time, on its standard input
and output. It times nothing and checks nothing: bench.py does both, in a process that never
imports sort.py.

A request is a count of lists, then each list as an 8-byte length and its values as int64; the
answer has the same form. Anything the variant returns that is not a list of 64-bit integers is
answered with a count of -1 and the reason, which bench.py reports as invalid.
"""

import struct
import sys
from array import array


def read_lists(stream) -> list[list[int]] | int | None:
    """The lists of one message; None at the end of the stream, -1 for a refusal (its reason
    follows, as a length and the text)."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    count = struct.unpack("<q", head)[0]
    if count < 0:
        return -1
    lists = []
    for _ in range(count):
        (length,) = struct.unpack("<q", stream.read(8))
        values = array("q")
        values.frombytes(stream.read(8 * length))
        lists.append(values.tolist())
    return lists


def write_lists(stream, lists: list) -> None:
    chunks = [struct.pack("<q", len(lists))]
    for values in lists:
        packed = array("q", values).tobytes()
        chunks += [struct.pack("<q", len(packed) // 8), packed]
    stream.write(b"".join(chunks))
    stream.flush()


def main() -> None:
    import sort  # the mutable part: here only, so that bench.py can use the wire format above

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # what the variant prints must not mix with the answers
    while (lists := read_lists(requests)) is not None:
        outputs = [sort.sort_ints(values) for values in lists]
        try:
            for output in outputs:
                if not isinstance(output, list):
                    raise TypeError(f"sort_ints returned {type(output).__name__}, not a list")
            write_lists(answers, outputs)
        except (TypeError, OverflowError) as e:
            reason = str(e).encode()[:300]
            answers.write(struct.pack("<q", -1) + struct.pack("<q", len(reason)) + reason)
            answers.flush()


if __name__ == "__main__":
    main()
