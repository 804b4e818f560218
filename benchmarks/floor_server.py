"""The raw Python floor's server: a Unix socket and struct-packed frames, nothing else.

Frame: `>IB` (body length, op) then the body. op 0: two doubles, answer their sum; op 1:
packed doubles, answer their sum; op 2: bytes, answer their length. Answer: `>I` length + body.
Run as `floor_server.py SOCKET_PATH`; prints `ready` once it listens. Imports only the stdlib.
"""

from __future__ import annotations

import socket
import struct
import sys

HDR = struct.Struct(">IB")
ADD = struct.Struct(">dd")
ANSWER_D = struct.Struct(">Id")
ANSWER_Q = struct.Struct(">IQ")


def serve(conn: socket.socket) -> None:
    buf = bytearray(1 << 16)
    view = memoryview(buf)
    while True:
        got = conn.recv_into(view)
        if not got:
            return
        while got < 5:
            more = conn.recv_into(view[got:])
            if not more:
                return
            got += more
        length, op = HDR.unpack_from(buf)
        need = 5 + length
        if need > len(buf):
            grown = bytearray(need)
            grown[:got] = view[:got]
            buf, view = grown, memoryview(grown)
        while got < need:
            more = conn.recv_into(view[got:need])
            if not more:
                return
            got += more
        if op == 0:
            a, b = ADD.unpack_from(buf, 5)
            conn.sendall(ANSWER_D.pack(8, a + b))
        elif op == 1:
            conn.sendall(ANSWER_D.pack(8, sum(view[5:need].cast("d"))))
        else:
            conn.sendall(ANSWER_Q.pack(8, length))


def main() -> None:
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(sys.argv[1])
    srv.listen(1)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    conn, _ = srv.accept()
    srv.close()
    serve(conn)


if __name__ == "__main__":
    main()
