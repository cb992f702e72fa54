"""/vendor/ (npm packages for the 3D pages) and /v1/avatars/NAME.vrm|glb over real HTTP on a real server."""

from __future__ import annotations

import json
import struct
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from facestage.serving import ServerThread
from facestage.serving.web_assets import avatar_name, node_modules


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ServerThread(db_path=tmp_path_factory.mktemp("assets") / "p.sqlite3") as s:
        yield s


def get(srv, path: str, headers: dict | None = None) -> tuple[int, dict, bytes]:
    try:
        with urlopen(Request(srv.url + path, headers=headers or {}), timeout=120) as r:
            return r.status, dict(r.headers), r.read()
    except HTTPError as e:
        return e.code, dict(e.headers), e.read()


@pytest.mark.skipif(not (node_modules() / "three").is_dir(), reason="run `npm ci` (three.js missing)")
def test_vendor_serves_the_packages_and_nothing_else(srv):
    status, headers, body = get(srv, "/vendor/three/build/three.module.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript") and b"REVISION" in body
    assert get(srv, "/vendor/@pixiv/three-vrm/lib/three-vrm.module.min.js")[0] == 200
    assert get(srv, "/vendor/iwer/build/iwer.module.js", {"If-None-Match": headers["ETag"]})[0] == 200
    assert get(srv, "/vendor/three/build/three.module.js", {"If-None-Match": headers["ETag"]})[0] == 304
    for bad in ("/vendor/three/../gltf-validator/package.json", "/vendor/three/build/%2e%2e/package.json",
                "/vendor/gltf-validator/index.js", "/vendor/three/README.md", "/vendor/three//build/three.module.js"):
        status, _, body = get(srv, bad)
        assert status == 404, bad
        assert json.loads(body)["error"] == "not_found"


def test_avatar_vrm_is_a_vrm1_glb_with_etag(srv):
    status, headers, body = get(srv, "/v1/avatars/ava.vrm")
    assert status == 200 and headers["Content-Type"] == "model/vrm"
    magic, version, _ = struct.unpack("<4sII", body[:12])
    assert magic == b"glTF" and version == 2
    n = struct.unpack("<I", body[12:16])[0]
    gltf = json.loads(body[20:20 + n])
    assert "VRMC_vrm" in gltf["extensions"] and "jawOpen" in gltf["extensions"]["VRMC_vrm"]["expressions"]["custom"]
    assert headers["Cache-Control"] == "public, max-age=300" and headers["ETag"].startswith('"')
    status, _, body = get(srv, "/v1/avatars/ava.vrm", {"If-None-Match": headers["ETag"]})
    assert status == 304 and body == b""


def test_avatar_names_and_refusals(srv):
    assert avatar_name("photo-astronaut") == "photo:astronaut" and avatar_name("kai") == "kai"
    status, _, body = get(srv, "/v1/avatars/nobody.vrm")
    assert status == 404 and "photo-NAME" in json.loads(body)["message"]
    status, _, body = get(srv, "/v1/avatars/photo-astronaut.vrm")  # photo avatars are body-model avatars too
    assert status == 200 and body[:4] == b"glTF"
    # this loopback server trusts its own machine as the operator: a missing upload is a plain 400 ...
    assert get(srv, "/v1/avatars/upload-x.glb?brand=demo")[0] == 400
    # ... but a wrong key is refused even here, and a server on a network wants a key (below)
    assert get(srv, "/v1/avatars/upload-x.glb?brand=demo", {"Authorization": "Bearer fs_wrong"})[0] == 403


def test_uploaded_avatars_need_the_brands_key_without_local_trust(tmp_path):
    from facestage.serving.security import SecurityConfig

    with ServerThread(db_path=tmp_path / "p.sqlite3", security=SecurityConfig(trust_local=False)) as net:
        assert get(net, "/v1/avatars/upload-x.glb?brand=demo")[0] == 401
        assert get(net, "/v1/avatars/upload-x.glb?brand=demo", {"Authorization": "Bearer fs_wrong"})[0] == 403
        assert get(net, "/v1/avatars/upload-x.glb")[0] == 401  # no brand named: whose upload?


def test_arkit_js_tables_match_the_python_ones():
    """facestage/web/arkit.js restates ARKIT_NAMES (the weights frame's order) and VISEME_TO_ARKIT: keep them equal."""
    import re
    from pathlib import Path

    from facestage.speech.visemes import VISEME_TO_ARKIT
    from facestage.tracking.arkit import ARKIT_NAMES

    js = (Path(__file__).resolve().parents[1] / "facestage/web/arkit.js").read_text()
    names = re.search(r"export const ARKIT = \[(.*?)\];", js, re.S).group(1)
    assert tuple(re.findall(r'"(\w+)"', names)) == ARKIT_NAMES
    table = re.search(r"export const VISEME_TO_ARKIT = \{(.*?)\n\};", js, re.S).group(1)
    visemes = {v: {k: float(x) for k, x in re.findall(r"(\w+): ([\d.]+)", body)}
               for v, body in re.findall(r"^\s*(\w+): \{(.*?)\}", table, re.M)}
    assert visemes == VISEME_TO_ARKIT


def test_preset_fallback_table_is_the_exporters_vrm_presets():
    """arkit.js's PRESET_FALLBACK (ARKit weights → VRM presets on preset-only VRMs) is the exporter's VRM_PRESETS:
    one table, written as JSON between markers, in both directions; every preset appears in the peel order once."""
    import re
    from pathlib import Path

    from facestage.avatar.gltf_export import VRM_PRESETS

    js = (Path(__file__).resolve().parents[1] / "facestage/web/arkit.js").read_text()
    body = re.search(r"// PRESET_TABLE_BEGIN\nexport const PRESET_FALLBACK = (\{.*?\});\n// PRESET_TABLE_END", js, re.S)
    assert json.loads(body.group(1)) == VRM_PRESETS
    order = re.findall(r'"(\w+)"', re.search(r"export const PRESET_ORDER = \[(.*?)\];", js).group(1))
    assert sorted(order) == sorted(VRM_PRESETS)


def test_the_pages_import_maps_agree_and_resolve(srv):
    """Browsers take no external import map, so each page carries a copy (only XR needs iwer): a package
    must map to the same file on every page, and every entry must be served from our own origin."""
    import re
    from pathlib import Path

    web = Path(__file__).resolve().parents[1] / "facestage" / "web"
    maps = {}
    for page in sorted(web.glob("*.html")):
        m = re.search(r'<script type="importmap">(.*?)</script>', page.read_text(), re.S)
        if m:
            maps[page.name] = json.loads(m.group(1))
    assert {"studio.html", "output.html", "console.html", "xr.html"} <= set(maps)
    merged: dict[str, str] = {}
    for page, m in maps.items():
        for name, target in m["imports"].items():
            assert merged.setdefault(name, target) == target, (page, name, target, merged[name])
    for name, target in merged.items():
        # a prefix entry ("three/addons/") is checked through a module the pages import from it
        path = target + "loaders/GLTFLoader.js" if target.endswith("/") else target
        status, _, _ = get(srv, path)
        assert status == 200, (name, path)
