"""Install pip into a bare virtual environment from PyPI, for Pythons without ensurepip."""

import json
import subprocess
import sys
import tempfile
import urllib.parse
import urllib.request
from pathlib import Path

INDEX = "https://pypi.org/pypi/pip/json"
with urllib.request.urlopen(INDEX, timeout=60) as reply:
    release = json.load(reply)
wheel = next(f for f in release["urls"] if f["filename"].endswith(".whl"))
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / wheel["filename"]
    # Mirrors answer with URLs relative to the JSON document.
    with urllib.request.urlopen(urllib.parse.urljoin(INDEX, wheel["url"]), timeout=120) as reply:
        path.write_bytes(reply.read())
    # A wheel is a zip that Python can run from: pip installs itself from its own wheel.
    subprocess.run(
        [sys.executable, f"{path}/pip", "install", "--quiet", "--no-index", str(path)], check=True
    )
