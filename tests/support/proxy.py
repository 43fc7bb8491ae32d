"""A TCP proxy that cuts event streams: every connection that asks for an execution's
stream is closed after a number of bytes of the answer, wherever that falls in a frame."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field


@dataclass
class CuttingProxy:
    upstream: tuple[str, int]
    cut_after: int  # bytes of a stream's answer passed on before the connection is cut
    cuts: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _pipe(self, client: socket.socket) -> None:
        server = socket.create_connection(self.upstream)
        streaming = threading.Event()

        def requests() -> None:
            with contextlib.suppress(OSError):
                while data := client.recv(65536):
                    if b"/stream" in data:
                        streaming.set()
                    server.sendall(data)
            with contextlib.suppress(OSError):
                server.shutdown(socket.SHUT_WR)

        threading.Thread(target=requests, daemon=True).start()
        sent = 0
        try:
            while data := server.recv(65536):
                if streaming.is_set() and sent + len(data) > self.cut_after:
                    client.sendall(data[: self.cut_after - sent])
                    with self._lock:
                        self.cuts += 1
                    break
                client.sendall(data)
                if streaming.is_set():
                    sent += len(data)
        except OSError:
            pass
        finally:
            for sock in (client, server):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()


@contextlib.contextmanager
def cutting_proxy(base_url: str, cut_after: int) -> Iterator[tuple[CuttingProxy, str]]:
    """A proxy in front of `base_url` (http://host:port); yields it and its own URL."""
    host, port = base_url.removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), cut_after)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    listener.settimeout(0.2)
    stop = threading.Event()

    def accept() -> None:
        while not stop.is_set():
            try:
                client, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=proxy._pipe, args=(client,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield proxy, f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
