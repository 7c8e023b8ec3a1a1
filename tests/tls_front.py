"""A TLS front for a plaintext PostgreSQL, for tests: the embedded server is built
without SSL. It answers libpq's SSLRequest with 'S', terminates TLS with a throwaway
self-signed certificate and relays the plaintext to the server, one thread per
connection. It runs as a process of its own (:class:`TlsFront` starts it): libpq's
blocking connect holds the interpreter lock, so no thread of the test could answer.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import select
import socket
import ssl
import struct
import subprocess
import sys
import threading
from pathlib import Path

SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104


def self_signed(folder: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = folder / "front.crt", folder / "front.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def _read_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


class TlsFront:
    """The front as a child process: TLS on ``port``, the plaintext server behind."""

    def __init__(self, upstream_port: int, folder: Path) -> None:
        self.log = folder / "tls-handshakes"
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(upstream_port), str(folder)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())

    @property
    def tls_connections(self) -> int:
        return len(self.log.read_text().splitlines()) if self.log.exists() else 0

    def close(self) -> None:
        self.process.kill()
        self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


class _Front:
    def __init__(self, upstream_port: int, folder: Path) -> None:
        self.upstream_port = upstream_port
        self.log = folder / "tls-handshakes"
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(*self_signed(folder))
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def serve_forever(self) -> None:
        while True:
            client, _ = self.listener.accept()
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with contextlib.suppress(OSError, ConnectionError, ssl.SSLError):
            while True:
                length, code = struct.unpack("!ii", _read_exactly(client, 8))
                if length == 8 and code == GSSENC_REQUEST:
                    client.sendall(b"N")
                    continue
                if length == 8 and code == SSL_REQUEST:
                    client.sendall(b"S")
                    client = self.context.wrap_socket(client, server_side=True)
                    with self.log.open("a") as log:
                        log.write("handshake\n")
                    first = b""
                else:
                    first = struct.pack("!ii", length, code)
                break
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            upstream.sendall(first)
            self._relay(client, upstream)

    @staticmethod
    def _relay(client: socket.socket, upstream: socket.socket) -> None:
        try:
            while True:
                pending = isinstance(client, ssl.SSLSocket) and client.pending()
                readable = [client] if pending else select.select([client, upstream], [], [])[0]
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (upstream if sock is client else client).sendall(data)
        finally:
            client.close()
            upstream.close()


if __name__ == "__main__":
    front = _Front(int(sys.argv[1]), Path(sys.argv[2]))
    print(front.port, flush=True)
    front.serve_forever()
