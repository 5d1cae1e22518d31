"""Cross-check for ssegate's aws-eventstream decoder (run by tests/eventstream.rs when
SSEGATE_BOTOCORE_PYTHON names a python with botocore; never needed by CI).

Decodes the frames in the file given as argv[1] with botocore's own EventStreamBuffer (which checks both
CRCs and parses every header type) and prints, per frame, JSON: total length, message CRC, headers
(bytes / UUIDs as hex, timestamps as epoch milliseconds), payload (UTF-8, lossy) and, for a Bedrock
{"bytes": "<base64>"} payload, the decoded inner text as "bytes_decoded".
"""

import base64
import datetime
import json
import sys
import uuid

from botocore.eventstream import EventStreamBuffer


def plain(value):
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, uuid.UUID):
        return value.hex
    if isinstance(value, datetime.datetime):
        return int(value.timestamp() * 1000)
    return value


def main():
    with open(sys.argv[1], "rb") as f:
        data = f.read()
    buf = EventStreamBuffer()
    buf.add_data(data)
    out = []
    for msg in buf:
        payload = msg.payload.decode("utf-8", "replace")
        entry = {
            "total_length": msg.prelude.total_length,
            "crc": msg.crc,
            "headers": {k: plain(v) for k, v in msg.headers.items()},
            "payload": payload,
        }
        try:
            wrapper = json.loads(payload)
            if isinstance(wrapper, dict) and isinstance(wrapper.get("bytes"), str):
                entry["bytes_decoded"] = base64.b64decode(wrapper["bytes"]).decode("utf-8")
        except ValueError:
            pass
        out.append(entry)
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
