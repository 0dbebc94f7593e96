#!/usr/bin/env python3
"""Writes seed inputs for fuzz_targets/region_open.rs into corpus/region_open/
(see that file's doc comment for the input format). Run from fuzz/."""
import os
import struct

MAGIC = int.from_bytes(b"shmkit\0R", "little")


def fnv(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & (2**64 - 1)
    return h


def words(*ws):
    return b"".join(w.to_bytes(8, "little") for w in ws)


# LayoutId::BYTES = LayoutId::named("shmkit::bytes", 1)
BYTES = fnv(b"shmkit::bytes" + (1).to_bytes(4, "little"))
UID = os.geteuid()


def header(total, layout=BYTES, pid=1234, uid=UID, version=1, state=2):
    ck = fnv(words(MAGIC, version, layout, total, 128, pid, uid))
    h = struct.pack("<QIIQQQIIQ", MAGIC, version, state, layout, total, 128, pid, uid, ck)
    return h.ljust(128, b"\0")


def prefix(flags=0, seals=0, repair=0, misc=0, size_sel=0, layout_sel=0, size_opt=0, ops=b""):
    return struct.pack("<BBBBQQQ", flags, seals, repair, misc, size_sel, layout_sel, size_opt) + ops.ljust(32, b"\0")


def op(offset, kind, n=0, arg=0):
    return struct.pack("<IBHB", offset, kind, n, arg)


NAMED, REPAIR, UNSEALED, LAYOUT, SIZE, RESIZE = 1, 2, 4, 8, 16, 32
FIX_TOTAL, FIX_OFFSET, FIX_UID = 16, 32, 64

ops = op(0, 0) + op(8, 1, 0, 3) + op(16, 2, 48) + op(1, 1 << 6 | 3, 1, 0x55)
data = bytes(range(256)) * 4
body = header(128 + len(data)) + data
seeds = {
    "empty": b"",
    "valid_memfd": prefix(ops=ops) + body,
    "valid_named": prefix(NAMED, ops=ops) + body,
    "valid_memfd_grown": prefix(RESIZE, size_sel=(8192 << 2) | 1, ops=ops) + header(128 + 8192) + data,
    "repair_memfd": prefix(REPAIR | LAYOUT, repair=FIX_TOTAL | FIX_OFFSET | FIX_UID, layout_sel=3, ops=ops)
    + bytes(128) + data,
    "repair_named_sized": prefix(NAMED | REPAIR | LAYOUT | SIZE, repair=FIX_TOTAL | FIX_OFFSET | FIX_UID,
                                 layout_sel=3, ops=ops) + bytes(128) + data,
    "unsealed": prefix(UNSEALED) + body,
    "header_only": prefix() + header(128),
    "short": prefix() + header(128)[:100],
}
os.makedirs("corpus/region_open", exist_ok=True)
for name, seed in seeds.items():
    with open(f"corpus/region_open/seed_{name}", "wb") as f:
        f.write(seed)
