"""A TLS server that misbehaves on purpose and records the request lines it gets."""

from __future__ import annotations

import gzip
import socket
import ssl
import threading
import time
from pathlib import Path


class RawTLSServer:
    """Serves files of `folder` over TLS, one request per connection, unless a behaviour
    is set for a path prefix: then that behaviour answers instead. Records every
    request line it receives (to show which paths were sent)."""

    def __init__(self, folder: Path, context: ssl.SSLContext | None) -> None:
        self.folder = folder
        self.context = context
        self.behaviours: dict[str, str] = {}
        self.requests: list[str] = []
        self.sent = 0  # body bytes the endless behaviours got out before the client left
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.url = f"https://localhost:{self.port}/"
        self.stopping = False
        self._held: list[socket.socket] = []
        self._acceptor = threading.Thread(target=self._accept, daemon=True)
        self._acceptor.start()

    def stop(self) -> None:
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() under way
        except OSError:
            pass
        self.sock.close()
        for held in self._held:
            held.close()

    def leave_connects_unanswered(self) -> None:
        """From now on a connect to this server hangs: no SYN-ACK, no reset (THREATS 24's
        "hanging connect"). The server stops accepting and shrinks its listen queue to
        one place, which a connection of its own fills: the kernel then drops every
        further SYN. No privileges and no firewall rule needed."""
        self.stopping = True
        socket.create_connection(("127.0.0.1", self.port)).close()  # wakes accept()
        self._acceptor.join()
        self.sock.listen(0)
        for _ in range(8):
            filler = socket.socket()
            filler.settimeout(0.5)
            self._held.append(filler)
            try:
                filler.connect(("127.0.0.1", self.port))
            except TimeoutError:
                return  # this SYN went unanswered: so will the next one
        raise AssertionError("the listen queue never filled")

    def _accept(self) -> None:
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.stopping:  # a connection that came in as the server stopped
                conn.close()
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, raw: socket.socket) -> None:
        try:
            if self.behaviours.get("*") == "no-handshake":
                time.sleep(5)
                return
            conn = self.context.wrap_socket(raw, server_side=True)
            conn.settimeout(10)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(4096)
                if not chunk:
                    return
                data += chunk
            line = data.split(b"\r\n", 1)[0].decode()
            self.requests.append(line)
            path = line.split(" ")[1].lstrip("/")
            behaviour = next((b for p, b in self.behaviours.items() if path.startswith(p)), None)
            self._answer(conn, path, behaviour)
        except (OSError, ssl.SSLError):
            pass
        finally:
            try:
                raw.close()
            except OSError:
                pass

    def _file(self, path: str) -> bytes | None:
        target = self.folder / path
        return target.read_bytes() if target.is_file() else None

    def _answer(self, conn: ssl.SSLSocket, path: str, behaviour: str | None) -> None:
        def send(status: str, headers: dict[str, str], body: bytes = b"") -> None:
            head = f"HTTP/1.1 {status}\r\nConnection: close\r\n" + "".join(
                f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
            conn.sendall(head.encode() + body)

        body = self._file(path)
        if behaviour is None:
            if body is None:
                send("404 Not Found", {"Content-Length": "0"})
            else:
                send("200 OK", {"Content-Length": str(len(body)),
                                "Content-Type": "application/octet-stream"}, body)
        elif behaviour == "trickle":
            send("200 OK", {"Content-Length": "100000"})
            for _ in range(200):  # one byte at a time, each well within the read timeout
                conn.sendall(b"x")
                time.sleep(0.2)
        elif behaviour == "endless":
            send("200 OK", {})
            block = b"\0" * 65536
            for _ in range(2000):  # 128 MiB, far past any cap
                conn.sendall(block)
        elif behaviour == "lying-length":
            send("200 OK", {"Content-Length": "600"})
            for _ in range(200):
                conn.sendall(b"\0" * 65536)
        elif behaviour == "huge-length":
            send("200 OK", {"Content-Length": str(10 ** 12)})
        elif behaviour == "gzip-bomb":
            bomb = gzip.compress(b"\0" * (64 << 20), compresslevel=9)
            send("200 OK", {"Content-Length": str(len(bomb)), "Content-Encoding": "gzip"}, bomb)
        elif behaviour == "gzip-stack":
            layered = body or b"x"
            for _ in range(8):
                layered = gzip.compress(layered)
            send("200 OK", {"Content-Length": str(len(layered)),
                            "Content-Encoding": ", ".join(["gzip"] * 8)}, layered)
        elif behaviour == "drop":
            send("200 OK", {"Content-Length": str(len(body or b"x" * 1000))},
                 (body or b"x" * 1000)[:len(body or b"x" * 1000) // 2])
            conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")  # RST
        elif behaviour == "redirect-loop":
            send("302 Found", {"Location": "/" + path, "Content-Length": "0"})
        elif behaviour == "redirect-http":
            send("302 Found", {"Location": f"http://localhost:{self.port}/{path}",
                               "Content-Length": "0"})
        elif behaviour == "redirect-file":
            send("302 Found", {"Location": "file:///etc/passwd", "Content-Length": "0"})
        elif behaviour == "redirect-other-host":
            send("302 Found", {"Location": f"https://127.0.0.1:{self.port}/{path}",
                               "Content-Length": "0"})
        elif behaviour in ("404", "500"):
            send(f"{behaviour} Oops", {"Content-Length": "5", "Content-Type": "text/plain"},
                 b"oops\n")
        elif behaviour == "html":
            page = b"<html><body>Welcome to the captive portal</body></html>"
            send("200 OK", {"Content-Length": str(len(page)), "Content-Type": "text/html"}, page)
        elif behaviour == "gzip-to-nothing":
            # One empty gzip member, a byte that starts no member, then zeros without
            # end: a decoder that skips what follows a bad member turns all of it into
            # nothing, so a cap on decoded bytes never trips (review finding 1).
            send("200 OK", {"Content-Encoding": "gzip", "Content-Type": "text/plain"},
                 gzip.compress(b"") + b"\xff")
            block = b"\0" * 65536
            for _ in range(4096):  # 256 MiB, unless the client hangs up first
                conn.sendall(block)
                self.sent += len(block)
        elif behaviour == "trickle-headers":
            # The status line, then one header byte every 0.2 s: each read is quick,
            # the headers never end (review finding 3).
            conn.sendall(b"HTTP/1.1 200 OK\r\n")
            for n in range(150):
                conn.sendall(b"X-Slow: a\r\n"[n % 11:n % 11 + 1])
                self.sent += 1
                time.sleep(0.2)
        elif behaviour == "date-minus-zero":
            # RFC 5322's "-0000" (no time zone known) in Date, "+0000" in Last-Modified:
            # one parses naive, the other aware (review finding 10).
            send("200 OK", {"Content-Length": str(len(body or b"")),
                            "Content-Type": "application/octet-stream",
                            "Date": "Mon, 30 Nov 2026 12:00:00 -0000",
                            "Last-Modified": "Mon, 30 Nov 2026 11:00:00 +0000"}, body or b"")
        elif behaviour == "flip":
            data = bytearray(body or b"")
            data[len(data) // 2] ^= 1
            send("200 OK", {"Content-Length": str(len(data))}, bytes(data))
        else:
            raise AssertionError(behaviour)
