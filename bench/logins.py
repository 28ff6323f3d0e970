#!/usr/bin/env python3
"""Log in at a fixed rate (default 8/s) for a fixed time, then print a summary.

Usage: logins.py BASE_URL EMAIL PASSWORD SECONDS [RATE]
Bounded in count and time; talks only to BASE_URL (loopback in bench/run.sh).
"""
import json
import sys
import threading
import time
import urllib.request

base, email, password, seconds = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
rate = float(sys.argv[5]) if len(sys.argv) > 5 else 8.0
body = json.dumps({"email": email, "password": password}).encode()
ok = 0
fail = 0
lock = threading.Lock()


def one():
    global ok, fail
    req = urllib.request.Request(base + "/api/auth/login", data=body,
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            good = resp.status == 200
    except Exception:
        good = False
    with lock:
        if good:
            ok += 1
        else:
            fail += 1


start = time.monotonic()
n = 0
threads = []
while time.monotonic() - start < seconds:
    t = threading.Thread(target=one)
    t.start()
    threads.append(t)
    n += 1
    time.sleep(max(0.0, start + n / rate - time.monotonic()))
for t in threads:
    t.join()
print(f"logins: {ok} ok, {fail} failed in {time.monotonic() - start:.1f}s")
