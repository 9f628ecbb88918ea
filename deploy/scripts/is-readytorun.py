#!/usr/bin/env python3
"""Exits 0 if every given .NET assembly is ReadyToRun (carries precompiled native code), 1 naming the first that is
not. ReadyToRun images have a ManagedNativeHeader in their CLI header (ECMA-335 II.25.3.3, with the READYTORUN
signature 'RTR' at that address)."""
import struct
import sys


def rva_to_offset(sections, rva):
    for virtual_address, size, raw_pointer in sections:
        if virtual_address <= rva < virtual_address + size:
            return raw_pointer + rva - virtual_address
    raise ValueError(f"RVA {rva:#x} is in no section")


def is_ready_to_run(path):
    data = open(path, "rb").read()
    pe = struct.unpack_from("<I", data, 0x3C)[0]
    if data[pe:pe + 4] != b"PE\0\0":
        raise ValueError("not a PE file")
    sections_count = struct.unpack_from("<H", data, pe + 6)[0]
    optional_size = struct.unpack_from("<H", data, pe + 20)[0]
    optional = pe + 24
    magic = struct.unpack_from("<H", data, optional)[0]
    directories = optional + (96 if magic == 0x10B else 112)
    cli_rva, _ = struct.unpack_from("<II", data, directories + 14 * 8)
    table = optional + optional_size
    sections = []
    for i in range(sections_count):
        entry = table + i * 40
        virtual_size, virtual_address, raw_size, raw_pointer = struct.unpack_from("<IIII", data, entry + 8)
        sections.append((virtual_address, max(virtual_size, raw_size), raw_pointer))
    cli = rva_to_offset(sections, cli_rva)
    native_rva, native_size = struct.unpack_from("<II", data, cli + 64)
    if native_rva == 0 or native_size == 0:
        return False
    return data[rva_to_offset(sections, native_rva):][:4] == b"RTR\0"


def main():
    for path in sys.argv[1:]:
        if not is_ready_to_run(path):
            print(f"{path}: not ReadyToRun")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
