"""The wheel ships the templates and the installed copy renders from them (issue 2, item 1).

Builds the wheel from this checkout, installs it with no dependencies into a fresh virtual
environment, and renders the assets from that installed copy, run from a directory where
the checkout is not importable. The fresh environment borrows the dependencies (Jinja2,
Flask, ...) from the test environment's site-packages through a path entry, so the test
needs no network; the webpush_kit it imports is the wheel's, which the test checks.
"""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow

PROBE = """
import json, webpush_kit, webpush_kit.assets as a
from webpush_kit.settings import Settings
b = a.render_assets(Settings(moengage_app_id="APP1", manifest_name="Shop"))
print(json.dumps({"file": webpush_kit.__file__, "templates": str(a.templates_dir()),
                  "sw": b.serviceworker.body.decode(), "manifest": b.manifest.body.decode(),
                  "typed": (a.templates_dir().parent / "py.typed").is_file()}))
"""


def test_wheel_installs_and_renders_from_the_installed_copy(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir",
                    str(dist), str(ROOT)], check=True, capture_output=True)
    [wheel] = list(dist.glob("webpush_kit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    for name in ("webpush_kit/templates/serviceworker.js.j2", "webpush_kit/templates/"
                 "manifest.json.j2", "webpush_kit/templates/client.js.j2",
                 "webpush_kit/templates/head.html.j2", "webpush_kit/py.typed"):
        assert name in names, name
    assert not any(n.startswith(("tests/", "sample_site/")) for n in names)

    env_dir = tmp_path / "fresh"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--no-deps",
                    "--disable-pip-version-check", str(wheel)], check=True)
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()"
                           "['purelib'])"], capture_output=True, text=True, check=True)
    # Dependencies only: a plain path entry does not process the test venv's .pth files,
    # so the editable install of this checkout stays invisible to the fresh environment.
    (Path(site.stdout.strip()) / "deps.pth").write_text(sysconfig.get_paths()["purelib"])

    out = subprocess.run([str(py), "-c", PROBE], capture_output=True, text=True,
                         cwd=tmp_path, check=True)
    import json

    result = json.loads(out.stdout)
    assert result["file"].startswith(str(env_dir)), result["file"]
    assert result["templates"].startswith(str(env_dir))
    assert result["typed"] is True
    assert 'importScripts("https://cdn.moengage.com/release/dc_1/versions/2/' in result["sw"]
    assert json.loads(result["manifest"])["name"] == "Shop"

    script = env_dir / "bin" / "webpush-kit"
    assert script.exists()
    help_out = subprocess.run([str(script), "--help"], capture_output=True, text=True,
                              cwd=tmp_path)
    assert help_out.returncode == 0, help_out.stderr
