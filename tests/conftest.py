"""Tests see the device profiles shipped in targets/ and those a test writes, never the user's own:
``edgegrow profile`` and ``edgegrow workflow`` write ~/.edgegrow/targets/host.json, which would
change what 'host' means. Set before any test module imports edgegrow."""
import os
import tempfile

os.environ["EDGEGROW_TARGETS"] = tempfile.mkdtemp(prefix="edgegrow-test-targets-")
