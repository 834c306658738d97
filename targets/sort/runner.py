"""Fixed part of the sort target, run in the child process bench.py starts: it imports the
mutable `sort.py` and sorts what bench.py sends, one request at a time, on its standard input
and output. It times nothing and checks nothing: bench.py does both, in a process that never
imports sort.py.

A message is an 8-byte length and a payload: a count of lists, then each list as an 8-byte length
and its values as int64. The answer has the same form; anything the variant returns that is not
a list of 64-bit integers is answered with a count of -1 and the reason, which bench.py reports
as invalid. An empty message first says that sort.py is imported.
"""

import struct
import sys
from array import array


def pack(lists: list) -> bytes:
    """Lists of int64 as one message's payload: their count, then each as a length and values."""
    chunks = [struct.pack("<q", len(lists))]
    for values in lists:
        packed = array("q", values).tobytes()
        chunks += [struct.pack("<q", len(packed) // 8), packed]
    return b"".join(chunks)


def unpack(payload: bytes) -> list[list[int]] | str:
    """The lists of a payload, or the reason of a refusal (a count of -1, then the text)."""
    (count,) = struct.unpack_from("<q", payload)
    if count < 0:
        return payload[8:].decode(errors="replace")
    lists, at = [], 8
    for _ in range(count):
        (length,) = struct.unpack_from("<q", payload, at)
        values = array("q")
        values.frombytes(payload[at + 8 : at + 8 + 8 * length])
        lists.append(values.tolist())
        at += 8 + 8 * length
    return lists


def refusal(reason: str) -> bytes:
    return struct.pack("<q", -1) + reason.encode()[:300]


def send(stream, payload: bytes) -> None:
    stream.write(struct.pack("<q", len(payload)) + payload)
    stream.flush()


def receive(stream) -> bytes | None:
    """One message's payload; None once the other side has gone."""
    head = stream.read(8)
    if len(head) < 8:
        return None
    (length,) = struct.unpack("<q", head)
    payload = stream.read(length)
    return payload if len(payload) == length else None


def main(echo: bool) -> None:
    """Answer each message with its lists sorted by sort.py, or, to `echo`, as they came."""
    if not echo:
        import sort  # the mutable part: here only, so that bench.py can use the wire format

    requests, answers = sys.stdin.buffer, sys.stdout.buffer
    sys.stdout = sys.stderr  # what the variant prints must not mix with the answers
    send(answers, b"")  # ready: sort.py is imported
    while (payload := receive(requests)) is not None:
        lists = unpack(payload)
        outputs = lists if echo else [sort.sort_ints(values) for values in lists]
        try:
            for output in outputs:
                if not isinstance(output, list):
                    raise TypeError(f"sort_ints returned {type(output).__name__}, not a list")
            send(answers, pack(outputs))
        except (TypeError, OverflowError) as e:
            send(answers, refusal(str(e)))


if __name__ == "__main__":
    main(echo=sys.argv[1:] == ["--echo"])
