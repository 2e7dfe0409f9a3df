# aio.py N: an asyncio event loop: a timer (asyncio.sleep), a job in the
# default executor's threads (run_in_executor), and a line through a
# socketpair stream (one end a StreamReader, the other written with
# sock_sendall), N times; prints what came through.
import asyncio
import hashlib
import socket
import sys


def work(i):
    h = hashlib.sha256()
    for k in range(2000):
        h.update(f"{i}:{k}".encode())
    return h.hexdigest()[:12]


async def main(n):
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    b.setblocking(False)
    reader, writer = await asyncio.open_connection(sock=a)
    for i in range(1, n + 1):
        await asyncio.sleep(0.03)
        digest = await loop.run_in_executor(None, work, i)
        await loop.sock_sendall(b, f"msg {i} {digest}\n".encode())
        line = await reader.readline()
        print(f"tick {i}: got {line.decode().strip()}", flush=True)
    writer.close()
    print("done", flush=True)


asyncio.run(main(int(sys.argv[1])))
