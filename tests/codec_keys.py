"""The suite seals payloads exactly as production does, with one fixed test key.

Fixed, not random, so histories recorded by a test (tests/workflows/histories/) replay in
later sessions; never use it anywhere else. The environment variable carries the same key
to every `Settings` and every `ticketflow` subprocess a test starts.
"""

from __future__ import annotations

import base64
import json
import os

from workers.codec import StaticKeys, data_converter

TEST_KEY_ID = "test-1"
TEST_KEY = bytes(range(32))
TEST_KEYS = StaticKeys({TEST_KEY_ID: TEST_KEY}, TEST_KEY_ID)
CONVERTER = data_converter(TEST_KEYS)
CODEC_ENV = {
    "TICKETFLOW_CODEC__KEYS": json.dumps({TEST_KEY_ID: base64.b64encode(TEST_KEY).decode()})
}
os.environ.update(CODEC_ENV)
