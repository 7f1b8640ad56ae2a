#!/usr/bin/env python3
"""Writes the seed inputs of tests/fuzz/corpus/<target>/seed-*: small valid (and a few
deliberately broken) inputs in each format, built from the format descriptions in the
headers the targets name. Re-run after a format change; crash reproducers found by fuzzing
live beside the seeds as crash-* and are never regenerated."""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def u8(v): return struct.pack('<B', v)
def u32(v): return struct.pack('<I', v)
def u64(v): return struct.pack('<Q', v)
def s(b): return u32(len(b)) + b


def write(target, name, data):
    d = os.path.join(HERE, 'corpus', target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, 'seed-' + name), 'wb') as f:
        f.write(data)


# --- peer wire format (raftd/transport/wire_format.h)
def frame(kind, body): return u32(len(body) + 1) + u8(kind) + body


hello = u8(1) + u64(0xc1) + u64(1) + u64(2) + s(b'infra1') + u32(1) + s(b'http://127.0.0.1:2379')
reply = u8(1) + u8(1) + s(b'') + u64(2) + s(b'infra2') + u32(0)
entry = u64(5) + u64(2) + u8(0) + s(b'put k v')
msg = u8(3) + u64(2) + u64(1) + u64(2) + u64(2) + u64(4) + u64(4) + u8(0) + u64(0) + u64(0) + \
    u32(2) + entry + u64(6) + u64(2) + u8(1) + s(b'') + u8(0)
snap_msg = u8(12) + u64(2) + u64(1) + u64(3) + u64(0) * 3 + u8(0) + u64(0) * 2 + u32(0) + \
    u8(1) + u64(100) + u64(3) + u32(2) + u64(1) + u64(2) + u32(1) + u64(3)
write('peer_frame', 'hello', frame(1, hello))
write('peer_frame', 'hello-reply', frame(2, reply))
write('peer_frame', 'stream', frame(1, hello) + frame(3, u32(2) + msg + snap_msg))
write('peer_frame', 'truncated', frame(3, u32(1) + msg)[:-9])

# --- raft messages stepped into the core (byte 0: bit 0 campaign, bit 1 tick, bit 2 propose)
def message(mtype, frm, term, log_term=0, index=0, commit=0, reject=0, hint=0, entries=b'', n=0, snap=u8(0)):
    return u8(mtype) + u64(1) + u64(frm) + u64(term) + u64(log_term) + u64(index) + u64(commit) + \
        u8(reject) + u64(hint) + u64(0) + u32(n) + entries + snap


def ent(index, term, data=b'', etype=0):
    return u64(index) + u64(term) + u8(etype) + s(data)


append = message(4, 2, 4, 3, 6, 7, entries=ent(7, 4) + ent(8, 4, b'x'), n=2)
conflict = message(4, 3, 5, 2, 4, 5, entries=ent(5, 5) + ent(6, 5), n=2)
heartbeat = message(6, 2, 4, commit=8)
votes = message(1, 2, 4) + message(3, 3, 4)
snapshot = message(11, 2, 6, snap=u8(1) + u64(50) + u64(6) + u32(3) + u64(1) + u64(2) + u64(3) + u32(0))
write('raft_step', 'append', u8(0) + u32(3) + append + heartbeat + conflict)
write('raft_step', 'campaign', u8(1) + u32(2) + votes + message(5, 2, 4, index=6))
write('raft_step', 'snapshot', u8(2) + u32(1) + snapshot)
write('raft_step', 'leader', u8(7) + u32(3) + votes + message(5, 3, 4, index=8) +
      message(5, 2, 4, reject=1, index=7, hint=2))

# --- ipc ring data (ipc/ring_layout.h): u32 tail, u32 head - tail, then the data area
def ring_frame(mtype, flags, fid, payload, epoch=1):
    f = u32(len(payload)) + struct.pack('<HH', mtype, 0xA500 | flags) + u64(fid) + u64(epoch) + payload
    return f + b'\0' * (-len(f) % 8)


whole = ring_frame(3, 3, 7, b'committed entry')
chunks = ring_frame(3, 1, 8, u64(20) + b'0123456789') + ring_frame(3, 0, 9, b'xx') + \
    ring_frame(3, 2, 8, b'abcdefghij')
aborted = ring_frame(3, 1, 10, u64(100) + b'abc') + ring_frame(3, 8, 10, b'')
write('ring_frame', 'whole', u32(0) + u32(len(whole)) + whole)
write('ring_frame', 'chunks', u32(0) + u32(len(chunks + aborted)) + chunks + aborted)
skip = ring_frame(0, 4, 0, b'\0' * 24)  # at 4048: fills the 4 KiB ring up to its end
write('ring_frame', 'wrap', u32(4048) + u32(len(skip) + len(whole)) + whole +
      b'\0' * (4048 - len(whole)) + skip)

# --- snapshot stream (raftd/snapshot/snapshot_transfer.h); receiver: cluster 1, member 2
header = u8(1) + u64(1) + u64(1) + u64(2) + u64(3) + u64(100) + u64(3) + u32(2) + u64(1) + u64(2) + u32(0)
data = b'CURRENT contents\n'
stream = frame(16, header) + frame(17, s(b'CURRENT') + u64(len(data))) + \
    frame(18, u32(crc32c(data[:5])) + data[:5]) + frame(18, u32(crc32c(data[5:])) + data[5:]) + \
    frame(19, u32(crc32c(data))) + frame(17, s(b'EMPTY') + u64(0)) + frame(19, u32(0)) + frame(20, b'')
write('snapshot_stream', 'ok', stream)
write('snapshot_stream', 'bad-name', frame(16, header) + frame(17, s(b'../x') + u64(0)) + frame(20, b''))
write('snapshot_stream', 'other-cluster', frame(16, u8(1) + u64(9) + header[9:]))

# --- WAL segments (raftd/wal/wal_format.h); first byte: bit 0 = fix CRCs
def record(rtype, group, payload):
    body = u32(len(payload)) + u8(rtype) + b'\0\0\0' + u32(group) + payload
    rec = u32(crc32c(body)) + body
    return rec + b'\0' * (-len(rec) % 8)


def segment(seq, prev_index, prev_term, entries, flags=0):
    out = record(1, 0, u64(0x314C415744535552) + u32(1) + u32(flags) + u64(seq) + u64(prev_index) + u64(prev_term))
    out += record(2, 0, u64(2) + u64(1) + u64(prev_index))
    for i, (term, data) in enumerate(entries):
        out += record(3, 1 + i // 2, u64(prev_index + 1 + i) + u64(term) + u8(0) + b'\0' * 7 + data)
    return out


seg0 = segment(0, 0, 0, [(1, b''), (1, b'a'), (2, b'put x')])
seg1 = segment(1, 3, 2, [(2, b'b'), (3, b'c')])
write('wal_segment', 'one', u8(0) + seg0 + b'\0' * 64)
write('wal_segment', 'two', u8(0) + seg0 + b'--SEG--\n' + seg1 + b'\0' * 32)
write('wal_segment', 'torn', u8(0) + seg0[:-5] + b'\x07' * 13)
write('wal_segment', 'overwrite', u8(0) + seg0 + record(3, 5, u64(2) + u64(4) + u8(0) + b'\0' * 7 + b'new'))
write('wal_segment', 'fixcrc', u8(1) + seg0)

# --- snapshot point (raftd/snapshot/snapshot_point.h); byte 0 bit 0 = fix CRC,
# then u64 WAL prev_index, u64 WAL entry count
point = u64(0x31504E5344535552) + u64(10) + u64(3) + u32(2) + u64(1) + u64(2) + u32(1) + u64(3)
write('snapshot_point', 'ok', u8(0) + u64(5) + u64(8) + point + u32(crc32c(point)))
write('snapshot_point', 'before-wal', u8(0) + u64(20) + u64(3) + point + u32(crc32c(point)))
write('snapshot_point', 'fixcrc', u8(1) + u64(0) + u64(12) + point + u32(0))
write('snapshot_point', 'truncated', u8(0) + u64(0) + u64(0) + point[:20])

# --- TOML (supervisor/toml_reader.h)
write('toml_config', 'config', b'''# rusd
name = "infra1"
data-dir = '/var/lib/rusd'
[network]
listen-client-urls = ["http://127.0.0.1:2379",
  "unix://x", ]
snapshot-count = 1_000
enable-pprof = false
"quoted key" = "a\\u00e9\\n"
''')
write('toml_config', 'bad', b'[a.b]\nx = 1.5\n')

# --- flags and environment: NUL-separated args, an empty field, NAME=VALUE env entries
write('config_flags', 'flags', b'\0'.join([
    b'--name=infra1', b'--initial-cluster=infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:2381',
    b'--listen-client-urls', b'http://127.0.0.1:2379,unix://sock', b'--heartbeat-interval=100',
    b'--election-timeout', b'1000', b'--initial-cluster-state=new', b'',
    b'ETCD_SNAPSHOT_COUNT=100', b'ETCD_QUOTA_BACKEND_BYTES=1000000']))
write('config_flags', 'bad', b'--heartbeat-interval=x\0--nope\0')

# --- node identity file (supervisor/node_identity.h)
write('node_identity', 'ok', b'# rusd node identity\nname=infra1\nmember_id=8e9e05c52164694d\n'
      b'cluster_id=cdf818194e3a8c32\ninitial_cluster=infra1=http://10.0.0.1:2380\n'
      b'initial_cluster_token=etcd-cluster\n')
write('node_identity', 'bad', b'name=x\nmember_id=zz\n')

# --- Go durations (common/go_duration.h)
for name, text in [('mixed', b'1h30m0.5s'), ('micro', b'-2\xc2\xb5s'), ('zero', b'0'),
                   ('max', b'9223372036854775807ns'), ('frac', b'.5m1.000000001h')]:
    write('go_duration', name, text)

# --- URLs (byte 0 even) and --initial-cluster (odd)
write('peer_url', 'http', b'\0http://[::1]:2380')
write('peer_url', 'unix', b'\0unixs://var/run/x.sock')
write('peer_url', 'cluster', b'\1a=http://10.0.0.1:2380,b=https://h:1,a=http://10.0.0.2:2380')
