#!/usr/bin/env python3
"""The floor under the cluster benchmark's messaging overhead on this machine: round trips of a bare pyzmq
DEALER -> ROUTER echo between two processes over TCP loopback (600-byte frames, like an identify request).
An identify through the cluster makes two such round trips (client-coordinator, coordinator-matcher) plus the
hand-offs inside each node. Usage: [EP=ipc:///tmp/echo.sock] scripts/zmq-echo-floor.py [ROUND_TRIPS=3000] [RUNS=2]
(needs pyzmq; EP: another endpoint, e.g. IPC, default TCP loopback)"""
import multiprocessing, os, sys, time
import zmq

ENDPOINT = os.environ.get("EP", "tcp://127.0.0.1:39111")

def serve():
    s = zmq.Context().socket(zmq.ROUTER)
    s.bind(ENDPOINT)
    while True:
        s.send_multipart(s.recv_multipart())

def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    server = multiprocessing.Process(target=serve, daemon=True)
    server.start()
    s = zmq.Context().socket(zmq.DEALER)
    s.connect(ENDPOINT)
    time.sleep(0.5)
    for run in range(runs):
        ms = []
        for _ in range(n):
            t = time.perf_counter()
            s.send_multipart([b"", b"x" * 600])
            s.recv_multipart()
            ms.append((time.perf_counter() - t) * 1000)
        ms = sorted(ms[n // 10:])  # first 10 % warm-up
        print("run %d: %d round trips, p50 %.3f ms, p99 %.3f ms, max %.3f ms"
              % (run + 1, len(ms), ms[len(ms) // 2], ms[int(len(ms) * 0.99)], ms[-1]))
    server.terminate()

if __name__ == "__main__":
    main()
