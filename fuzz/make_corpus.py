#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/meta_rpc.cc: request sequences in its framing, each body
encoded by protoc from the text format below.
Run from the repository root after changing a seed or proto/meta.proto:
    python3 fuzz/make_corpus.py
The other targets' seeds (XML, HTTP, JSON, URLs, a byte or two of flags before them) are
checked in as they are."""
import os
import struct
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def encode(message, text):
    return subprocess.run(
        ["protoc", "--proto_path=" + os.path.join(TOP, "proto"),
         "--encode=" + message, "meta.proto"],
        input=text.encode(), stdout=subprocess.PIPE, check=True).stdout


def call(method, text=""):
    req = {"Lookup": "LookupRequest", "GetAttr": "GetAttrRequest", "SetAttr": "SetAttrRequest",
           "Mknod": "MknodRequest", "Mkdir": "MkdirRequest", "Symlink": "SymlinkRequest",
           "Link": "LinkRequest", "Unlink": "UnlinkRequest", "Rmdir": "RmdirRequest",
           "Rename": "RenameRequest", "ReadDir": "ReadDirRequest",
           "Readlink": "ReadlinkRequest", "GetBlocks": "GetBlocksRequest",
           "AllocBlockIds": "AllocBlockIdsRequest", "CommitBlocks": "CommitBlocksRequest",
           "Release": "ReleaseRequest", "SetXattr": "SetXattrRequest",
           "GetXattr": "GetXattrRequest", "ListXattr": "ListXattrRequest",
           "RemoveXattr": "RemoveXattrRequest", "StatFs": "StatFsRequest",
           "CreateVolume": "CreateVolumeRequest", "ListVolumes": "ListVolumesRequest",
           "DeleteVolume": "DeleteVolumeRequest", "Mount": "MountRequest",
           "Heartbeat": "HeartbeatRequest", "Unmount": "UnmountRequest"}[method]
    body = encode("nighfs.meta.v1." + req, text)
    name = method.encode()
    return bytes([len(name)]) + name + struct.pack("<H", len(body)) + body


ROOT = "caller { uid: 0 gid: 0 }"
META_RPC = {
    "lookup": [call("Lookup", 'volume_id: 1 parent: 1 name: "f" ' + ROOT)],
    "getattr": [call("GetAttr", "volume_id: 1 ino: 3 " + ROOT)],
    "setattr_chmod_truncate": [call("SetAttr", "volume_id: 1 ino: 3 valid: 9 mode: 0600 size: 100000 "
                                    + ROOT)],
    "setattr_chown_times": [call("SetAttr", "volume_id: 1 ino: 2 valid: 214 uid: 1000 gid: 1000 "
                                 "atime_ns: 1 mtime_ns: 2 " + ROOT)],
    "mknod_fifo": [call("Mknod", 'volume_id: 1 parent: 2 name: "p" mode: 4516 uid: 1 gid: 1 '
                        'request_id: "0123456789abcdef" ' + ROOT)],
    "mkdir_then_lookup": [call("Mkdir", 'volume_id: 1 parent: 1 name: "e" mode: 1517 ' + ROOT),
                          call("Lookup", 'volume_id: 1 parent: 1 name: "e" ' + ROOT),
                          call("ReadDir", "volume_id: 1 ino: 5 plus: true " + ROOT)],
    "symlink_readlink": [call("Symlink", 'volume_id: 1 parent: 2 name: "s" target: "../f" ' + ROOT),
                         call("Readlink", "volume_id: 1 ino: 4 " + ROOT)],
    "link_unlink": [call("Link", 'volume_id: 1 ino: 3 new_parent: 2 new_name: "g" ' + ROOT),
                    call("Unlink", 'volume_id: 1 parent: 1 name: "f" session_id: 1 sustain: true '
                         + ROOT),
                    call("Release", "volume_id: 1 session_id: 1 ino: 3")],
    "rmdir": [call("Rmdir", 'volume_id: 1 parent: 1 name: "d" ' + ROOT)],
    "rename_exchange": [call("Rename", 'volume_id: 1 parent: 1 name: "f" new_parent: 1 '
                             'new_name: "l" flags: 2 session_id: 1 ' + ROOT)],
    "rename_into_dir": [call("Rename", 'volume_id: 1 parent: 1 name: "f" new_parent: 2 '
                             'new_name: "f2" flags: 1 ' + ROOT)],
    "readdir_cookie": [call("ReadDir", "volume_id: 1 ino: 1 cookie: 2 limit: 1 " + ROOT)],
    "blocks": [call("AllocBlockIds", "volume_id: 1 count: 2 session_id: 1"),
               call("CommitBlocks", "volume_id: 1 ino: 3 blocks { index: 1 id: 2 length: 10 "
                    "object_size: 10 crc32c: 7 } blocks { index: 5 id: 3 length: 1 object_size: 1 } "
                    "min_size: 400000 mtime_ns: 5 clear_suid: true drop_indexes: 0 " + ROOT),
               call("GetBlocks", "volume_id: 1 ino: 3 first_index: 0 count: 0 " + ROOT)],
    "xattrs": [call("SetXattr", 'volume_id: 1 ino: 3 name: "user.b" value: "xyz" flags: 1 ' + ROOT),
               call("GetXattr", 'volume_id: 1 ino: 3 name: "user.a" ' + ROOT),
               call("ListXattr", "volume_id: 1 ino: 3 " + ROOT),
               call("RemoveXattr", 'volume_id: 1 ino: 3 name: "user.a" ' + ROOT)],
    "statfs": [call("StatFs", "volume_id: 1")],
    "volumes": [call("CreateVolume", 'name: "v2" block_size: 65536 store_url: "mem://v2"'),
                call("ListVolumes"),
                call("DeleteVolume", 'name: "v2"')],
    "sessions": [call("Mount", 'volume_name: "vol" hostname: "h" mount_point: "/m" pid: 7'),
                 call("Heartbeat", "session_id: 2"),
                 call("Unmount", "session_id: 2")],
    "delete_mounted_volume": [call("DeleteVolume", 'name: "vol"')],
}


def write(target, name, data):
    d = os.path.join(TOP, "fuzz", "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def main():
    for name, calls in META_RPC.items():
        write("meta_rpc", name, b"".join(calls))
    return 0


if __name__ == "__main__":
    sys.exit(main())
