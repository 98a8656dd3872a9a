#!/usr/bin/env python3
"""How often a multi-threaded process still has a running thread right after kill(pid, SIGSTOP) returns.

    python3 scripts/sigstop-race.py [ROUNDS=200]

Starts a Python process with four busy threads, then ROUNDS times: SIGSTOP, read every thread's state from
/proc/PID/task/*/stat at once, SIGCONT. Prints how many rounds saw a thread not yet stopped (state other than T/t).
This is why the process tests wait for every thread to stop (ProcessSignals.send, docs/ops.md).
"""
import os
import signal
import subprocess
import sys
import time

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 200
child = subprocess.Popen([sys.executable, "-c",
                          "import threading, time\n"
                          "def spin():\n  while True: time.sleep(0)\n"
                          "for _ in range(4): threading.Thread(target=spin, daemon=True).start()\n"
                          "time.sleep(600)"])
try:
    time.sleep(0.5)
    not_yet = 0
    for _ in range(rounds):
        os.kill(child.pid, signal.SIGSTOP)
        states = [open(f"/proc/{child.pid}/task/{t}/stat").read().rsplit(")", 1)[1].split()[0]
                  for t in os.listdir(f"/proc/{child.pid}/task")]
        if any(s not in "Tt" for s in states):
            not_yet += 1
        os.kill(child.pid, signal.SIGCONT)
        time.sleep(0.005)
    print(f"a thread still running right after kill(SIGSTOP): {not_yet} of {rounds} rounds")
finally:
    child.kill()
    child.wait()
