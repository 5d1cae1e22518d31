"""The npm `eventsource` package consumes an SSE stream with ids through ssegate (events.toml over the mock's
GET /events) and sees every event in order and the end event: see eventsource_client.mjs.
"""

from __future__ import annotations

import json
import shutil
import subprocess

from harness import HERE, Gateway, check, time_limit
from mock_upstream import SSE_EVENT_COUNT, SSE_MULTILINE_ID, MockServer


def main() -> None:
    node = shutil.which("node")
    check(node is not None, "node not found (scripts/setup.sh installs it)")
    check((HERE / "node_modules" / "eventsource").is_dir(),
          "tests/clients/node_modules/eventsource missing: run `npm ci` in tests/clients (scripts/clients.sh does)")
    mock = MockServer().start()
    with time_limit(55), Gateway("events.toml", upstream=mock.url) as gw:
        proc = subprocess.run([node, "eventsource_client.mjs", gw.base + "/sse/events", str(SSE_EVENT_COUNT),
                               str(SSE_MULTILINE_ID)], cwd=HERE, capture_output=True, text=True, timeout=45)
        print(proc.stdout.strip())
        if proc.stderr.strip():
            print(proc.stderr.strip())
        lines = proc.stdout.strip().splitlines()
        result = json.loads(lines[-1]) if lines else {}
        check(proc.returncode == 0 and result.get("ok") is True,
              f"eventsource client failed (exit {proc.returncode}): {result.get('problems')}")
        check(len(mock.requests_to("/events")) == 1, "the client connected more than once")
    mock.shutdown()
    print(f"ok: npm eventsource: {SSE_EVENT_COUNT} events with ids 1..{SSE_EVENT_COUNT} in order, then `end`")


if __name__ == "__main__":
    main()
