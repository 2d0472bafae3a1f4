"""Container health probe: exit 0 when the service answers ``GET /ready`` with 200, else 1.

Python's urllib, because the slim images carry no curl. The port is the service's own setting.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request


def ready_url() -> str:
    return f"http://127.0.0.1:{os.environ.get('SHITU_SERVER__PORT', '8000')}/ready"


def main() -> int:
    url = ready_url()
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        sys.stderr.write(f"{url}: {error}\n")
        return 1


if __name__ == "__main__":
    sys.exit(main())
