"""The demo's kv client: writes SETs to the guest one after another (each retried until answered)
and remembers every one the guest acknowledged; on SIGTERM it stops, reads every acknowledged key
back and prints one JSON line: how many were acknowledged, how many are missing, and the longest
time the guest did not answer (the failover, as a client sees it). Usage: kv_writer.py IP PORT"""
import json
import signal
import socket
import sys
import time

ip, port = sys.argv[1], int(sys.argv[2])
stop = False


def on_term(*_):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_term)
sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.settimeout(0.1)
next_id = 0


def request(text, give_up):
    """Sends 'ID TEXT' until 'ID ...' comes back (or give_up seconds pass); the answer after the id."""
    global next_id
    next_id += 1
    message, prefix = f"{next_id} {text}".encode(), f"{next_id} ".encode()
    deadline = time.monotonic() + give_up
    while time.monotonic() < deadline:
        sock.sendto(message, (ip, port))
        try:
            while True:
                reply = sock.recv(512).rstrip(b"\n")
                if reply.startswith(prefix):
                    return reply[len(prefix):].decode()
        except socket.timeout:
            pass
    return None


acked, longest, last_answer, i = {}, 0.0, time.monotonic(), 0
while not stop:
    key, value = f"k{i}", f"v{i * 7}"
    reply = request(f"SET {key} {value}", 0.5)
    now = time.monotonic()
    if reply == "OK":
        acked[key] = value
        longest = max(longest, now - last_answer)
        last_answer = now
        i += 1
missing = [k for k, v in acked.items() if request(f"GET {k}", 10) != f"VALUE {v}"]
print(json.dumps({"acknowledged": len(acked), "missing": len(missing), "first_missing": missing[:3],
                  "longest_silence_ms": round(longest * 1000)}), flush=True)
