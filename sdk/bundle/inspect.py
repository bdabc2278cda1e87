"""Re-check a bundle folder: its manifest and a fresh hash of every file it lists."""
from __future__ import annotations

import json
from pathlib import Path

from edgetailor.bundle.manifest import SCHEMA, path_sha256, size_bytes, tree_files
from edgetailor.errors import BundleError


def read_manifest(folder: str | Path) -> dict:
    """The ``manifest.json`` of a bundle folder, checked to be an edgetailor bundle manifest."""
    folder = Path(folder)
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{folder} is not a bundle (no manifest.json)") from None
    except json.JSONDecodeError as exc:
        raise BundleError(f"{folder}/manifest.json is not valid JSON ({exc})") from None
    if not isinstance(manifest, dict) or manifest.get("schema") != SCHEMA:
        raise BundleError(f"{folder}/manifest.json is not an {SCHEMA} manifest")
    return manifest


def inspect_bundle(folder: str | Path) -> dict:
    """The manifest of a bundle folder and a fresh hash check of every file it lists.

    ``{"manifest": ..., "files": {name: {"sha256_ok": bool, ...}}, "unlisted": [...], "ok": bool}``
    """
    folder = Path(folder)
    manifest = read_manifest(folder)
    checks = {}
    for name, entry in sorted(manifest.get("files", {}).items()):
        path = folder / name
        if not path.exists():
            checks[name] = {"present": False, "sha256_ok": False}
            continue
        actual = path_sha256(path)
        checks[name] = {"present": True, "sha256_ok": actual == entry.get("sha256"),
                        "bytes": size_bytes(path)}
        if path.is_dir() and actual != entry.get("sha256"):
            now = tree_files(path)
            listed = entry.get("files", {})
            checks[name]["changed"] = sorted(k for k in set(now) | set(listed) if now.get(k) != listed.get(k))
    unlisted = sorted(p.name for p in folder.iterdir()
                      if p.name not in checks and p.name != "manifest.json")
    ok = bool(checks) and all(c["sha256_ok"] for c in checks.values())
    return {"manifest": manifest, "files": checks, "unlisted": unlisted, "ok": ok}
