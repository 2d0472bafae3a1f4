"""A small validation json for equal-CPU comparison runs: the first N standard, shelf and empty photos.

    python scripts/detection_val_subset.py data/det/detection/val.json data/det/detection/val_small.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path)
    parser.add_argument("target", type=Path, help="written beside the source: image paths stay relative")
    parser.add_argument("--standard", type=int, default=100)
    parser.add_argument("--shelf", type=int, default=40)
    parser.add_argument("--empty", type=int, default=10)
    arguments = parser.parse_args()
    document = json.loads(arguments.source.read_text(encoding="utf-8"))
    quota = {"standard": arguments.standard, "shelf": arguments.shelf, "empty": arguments.empty}
    images = []
    for image in document["images"]:
        kind = image.get("scene_kind", "standard")
        if quota.get(kind, 0) > 0:
            quota[kind] -= 1
            images.append(image)
    kept = {image["id"] for image in images}
    document["images"] = images
    document["annotations"] = [item for item in document["annotations"] if item["image_id"] in kept]
    arguments.target.write_text(json.dumps(document), encoding="utf-8")
    print(f"{len(images)} photos, {len(document['annotations'])} boxes -> {arguments.target}")


if __name__ == "__main__":
    main()
