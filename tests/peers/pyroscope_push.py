"""The Pyroscope Python SDK (pyroscope-io) pushing profiles to a server.

  pyroscope_push.py SERVER_ADDRESS [SECONDS]

Profiles its own busy loop for SECONDS (default 3) with a 1 s upload
interval and no credentials, then shuts the agent down, which sends what it
still holds. Prints "pushed" and exits 0 when the agent shut down cleanly.
"""
import sys
import time

import pyroscope


def busy(until):
    n = 0
    while time.monotonic() < until:
        n += sum(i * i for i in range(1000))
    return n


def main():
    server = sys.argv[1]
    seconds = float(sys.argv[2]) if len(sys.argv) > 2 else 3.0
    pyroscope.configure(
        application_name="lgtm-proxy.test",
        server_address=server,
        sample_rate=100,
        upload_interval=1,
        tags={"suite": "profiles"},
    )
    busy(time.monotonic() + seconds)
    if not pyroscope.shutdown():
        print("the agent did not shut down cleanly", file=sys.stderr)
        sys.exit(1)
    print("pushed")


if __name__ == "__main__":
    main()
