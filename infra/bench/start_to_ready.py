#!/usr/bin/env python3
"""Start-to-ready time of a Lambda binary: from process start until it first polls the Runtime
API for an invocation (the end of its init, connection warm-up included). Plays the Runtime API
on loopback; nothing leaves the machine. Usage: [AWS_ENDPOINT_URL=…] start_to_ready.py BINARY [RUNS]"""

import http.server
import os
import statistics
import subprocess
import sys
import threading
import time

ready = threading.Event()


class RuntimeApi(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path.endswith("/runtime/invocation/next"):
            ready.set()
        # Hold the poll open: the binary stays parked, as it would between invocations.
        time.sleep(0.5)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


def main():
    binary = sys.argv[1]
    runs = int(sys.argv[2]) if len(sys.argv) > 2 else 20
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), RuntimeApi)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    env = dict(
        os.environ,
        AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{server.server_port}",
        AWS_LAMBDA_FUNCTION_NAME="WebhookIngestFunction",
        AWS_LAMBDA_FUNCTION_MEMORY_SIZE="256",
        AWS_LAMBDA_FUNCTION_VERSION="$LATEST",
        AWS_REGION="us-east-1",
        AWS_ACCESS_KEY_ID="x",
        AWS_SECRET_ACCESS_KEY="x",
        # An emulator to warm up against, if given; else a closed port (warm-up gives up).
        AWS_ENDPOINT_URL=os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:9"),
        MESSAGES_TABLE="m", TENANTS_TABLE="t", ROUTES_TABLE="r", INBOUND_QUEUE_URL="http://127.0.0.1:9/q",
        CONTACTS_TABLE="c", DATA_BUCKET="b",
        META_APP_SECRET="s", META_VERIFY_TOKEN="v", CONTACT_HASH_KEY="k", KMS_KEY_ID="key",
        RUST_LOG="warn",
    )
    samples = []
    for _ in range(runs):
        ready.clear()
        start = time.perf_counter()
        proc = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not ready.wait(10):
            proc.kill()
            sys.exit("the binary never polled for an invocation")
        samples.append((time.perf_counter() - start) * 1000)
        proc.kill()
        proc.wait()
    print(f"start-to-ready over {runs} runs: median {statistics.median(samples):.2f} ms, "
          f"min {min(samples):.2f} ms, max {max(samples):.2f} ms")


if __name__ == "__main__":
    main()
