"""The Python multiprocessing rows of `shmkit bench`.

Runs one row at one size with the protocol of the Rust rows (see
measure.rs): the far end, a multiprocessing child, sends READY, echoes
`echoes` messages, takes `sinks` more and acknowledges the last. Each
message is `size` bytes stamped with its sequence number in its first and
last 8 bytes, and checked on arrival.

    python3 python_peer.py pipe|queue SIZE WARMUP ROUNDS STREAM [NEAR_CPU FAR_CPU]

Prints one line: `p50_ns p99_ns p999_ns samples messages_per_second`.
"""

import multiprocessing as mp
import os
import struct
import sys
import time

READY = 2**64 - 2


def message(size):
    return bytearray((i * 7 + 1) & 0xFF for i in range(size))


def stamp(msg, seq):
    struct.pack_into("=Q", msg, 0, seq)
    struct.pack_into("=Q", msg, len(msg) - 8, seq)


def read_stamp(got, size):
    if len(got) != size:
        raise RuntimeError(f"a message of {len(got)} bytes, not {size}")
    head = struct.unpack_from("=Q", got, 0)[0]
    tail = struct.unpack_from("=Q", got, size - 8)[0]
    if head != tail:
        raise RuntimeError(f"a torn message (stamps {head} and {tail})")
    return head


class PipeEnd:
    """A `multiprocessing.Pipe` connection: send_bytes / recv_bytes."""

    def __init__(self, conn, size):
        self.conn, self.msg, self.size = conn, message(size), size

    def send(self, seq):
        stamp(self.msg, seq)
        self.conn.send_bytes(self.msg)

    def recv(self):
        return read_stamp(self.conn.recv_bytes(), self.size)


class QueueEnd:
    """Two `multiprocessing.Queue`s: put / get of `bytes` (pickled)."""

    def __init__(self, tx, rx, size):
        self.tx, self.rx, self.msg, self.size = tx, rx, message(size), size

    def send(self, seq):
        stamp(self.msg, seq)
        self.tx.put(bytes(self.msg))

    def recv(self):
        return read_stamp(self.rx.get(), self.size)


def pin(cpu):
    if cpu is not None:
        try:
            os.sched_setaffinity(0, {cpu})
        except OSError:
            pass


def far_end(make_end, size, echoes, sinks, cpu):
    pin(cpu)
    end = make_end()
    end.send(READY)
    for i in range(echoes):
        seq = end.recv()
        if seq != i:
            raise RuntimeError(f"echo phase: message {seq}, expected {i}")
        end.send(seq)
    for i in range(sinks):
        seq = end.recv()
        if seq != echoes + i:
            raise RuntimeError(f"throughput phase: message {seq}, expected {echoes + i}")
    if sinks:
        end.send(echoes + sinks - 1)


def pipe_far(conn, size, echoes, sinks, cpu):
    far_end(lambda: PipeEnd(conn, size), size, echoes, sinks, cpu)


def queue_far(ping, pong, size, echoes, sinks, cpu):
    far_end(lambda: QueueEnd(pong, ping, size), size, echoes, sinks, cpu)


def quantile(samples, p):
    return samples[min(len(samples) - 1, round((len(samples) - 1) * p))]


def main():
    kind = sys.argv[1]
    size, warmup, rounds, stream = (int(a) for a in sys.argv[2:6])
    near = int(sys.argv[6]) if len(sys.argv) > 7 else None
    far = int(sys.argv[7]) if len(sys.argv) > 7 else None
    echoes = warmup + rounds
    if kind == "pipe":
        a, b = mp.Pipe()
        child = mp.Process(target=pipe_far, args=(b, size, echoes, stream, far))
        end = PipeEnd(a, size)
    elif kind == "queue":
        ping, pong = mp.Queue(), mp.Queue()
        child = mp.Process(target=queue_far, args=(ping, pong, size, echoes, stream, far))
        end = QueueEnd(ping, pong, size)
    else:
        raise SystemExit(f"unknown row {kind!r}")
    child.daemon = True
    child.start()
    pin(near)
    if end.recv() != READY:
        raise RuntimeError("the far end did not begin with ready")
    for seq in range(warmup):
        end.send(seq)
        if end.recv() != seq:
            raise RuntimeError("a wrong echo")
    clock = time.perf_counter_ns
    samples = []
    for i in range(rounds):
        seq = warmup + i
        t = clock()
        end.send(seq)
        back = end.recv()
        samples.append((clock() - t) / 2)
        if back != seq:
            raise RuntimeError("a wrong echo")
    samples.sort()
    per_second = 0.0
    if stream:
        t = clock()
        for i in range(stream):
            end.send(echoes + i)
        if end.recv() != echoes + stream - 1:
            raise RuntimeError("a wrong acknowledgement")
        per_second = stream / ((clock() - t) / 1e9)
    child.join(20)
    if child.exitcode != 0:
        raise RuntimeError(f"the far end ended with {child.exitcode}")
    print(
        f"{quantile(samples, 0.5):.1f} {quantile(samples, 0.99):.1f} "
        f"{quantile(samples, 0.999):.1f} {len(samples)} {per_second:.1f}"
    )


if __name__ == "__main__":
    main()
