"""The explorer's HTTP server: 127.0.0.1 only, MIME types, JSON errors, ports, uploads."""
from __future__ import annotations

import io
import json
import socket
import urllib.error
import urllib.request

import numpy as np
import pytest
from PIL import Image

import convnet.nn as nn
from convnet.explorer import Explorer, explore
from convnet.explorer import server as srv
from convnet.explorer.server import PortInUse, dispatch, make_server
from convnet.explorer.session import Session
from convnet.explorer.sources import PythonSource

from ._proc import ctrl_c


def _model():
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(),
                         nn.Linear(3 * 4 * 4, 2)).eval()


def _data(n=4):
    return np.random.default_rng(0).standard_normal((n, 1, 8, 8)).astype(np.float32)


@pytest.fixture
def live():
    """An Explorer on any free port, stopped afterwards."""
    ex = Explorer(Session(PythonSource(_model(), _data(), class_names=["no", "yes"])), port=0,
                  open_browser=False, quiet=True)
    yield ex
    ex.stop()


def _get(url, data=None, headers=None):
    req = urllib.request.Request(url, data=data, headers=headers or {},
                                 method="POST" if data is not None else "GET")
    for k, v in (headers or {}).items():  # urllib would otherwise send its own Host
        req.add_unredirected_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_binds_loopback_only_and_serves_the_api(live):
    assert live.server.server_address[0] == "127.0.0.1"
    assert live.url == f"http://127.0.0.1:{live.port}/"
    status, mime, body = _get(live.url + "api/meta")
    assert status == 200 and mime == "application/json"
    meta = json.loads(body)
    assert meta["class_names"] == ["no", "yes"] and meta["can_upload"] is True
    status, mime, _ = _get(live.url)
    assert status == 200 and mime.startswith("text/html")
    status, mime, _ = _get(live.url + "static/explain.js")
    assert status == 200 and mime.startswith("text/javascript")
    status, mime, body = _get(live.url + "api/maps/test-1/0.png")
    assert status == 200 and mime == "image/png" and body[:8] == b"\x89PNG\r\n\x1a\n"
    fwd = json.loads(_get(live.url + "api/forward/test-1")[2])
    status, mime, blob = _get(live.url + f"api/blob/{fwd['layers'][0]['output_blob']}.bin")
    assert status == 200 and mime == "application/octet-stream" and blob[:4] == b"CNV1"


@pytest.mark.parametrize("path,status", [("api/nothing", 404), ("api/forward/test-77", 404),
                                         ("static/../server.py", 404),
                                         ("api/gradcam/test-0?layer=4&class=0", 400),
                                         ("api/inputs?limit=x", 400)])
def test_errors_are_json_without_traceback(live, path, status):
    got, mime, body = _get(live.url + path)
    assert got == status and mime == "application/json"
    assert set(json.loads(body)) == {"error"} and "Traceback" not in body.decode()


def test_a_foreign_host_name_is_refused(live):
    status, mime, body = _get(live.url + "api/meta", headers={"Host": "evil.example:80"})
    assert status == 403 and "evil.example" in json.loads(body)["error"]
    assert _get(live.url + "api/meta", headers={"Host": f"localhost:{live.port}"})[0] == 200


def test_an_internal_failure_is_a_500_json_line():
    class Broken(Session):
        def meta(self):
            raise RuntimeError("boom")

    s = Broken(PythonSource(_model(), _data()))
    status, mime, body = dispatch(s, "GET", "/api/meta")
    assert status == 500 and json.loads(body) == {"error": "RuntimeError: boom"}


def test_upload_of_a_non_image_is_a_400_and_an_image_works(live):
    status, mime, body = _get(live.url + "api/upload", b"just text", {"X-Filename": "notes.txt"})
    assert status == 400 and mime == "application/json"
    assert json.loads(body)["error"].startswith("upload: notes.txt is not an image")
    # the page's own requests get the refusal as an answer (no failed request in its console)
    status, _, body = _get(live.url + "api/upload", b"just text",
                           {"X-Filename": "notes.txt", "X-Convnet-Page": "1"})
    answer = json.loads(body)
    assert status == 200 and answer["refused"] is True and "not an image" in answer["error"]
    buf = io.BytesIO()
    Image.fromarray(np.full((16, 16), 200, np.uint8)).save(buf, format="PNG")
    status, _, body = _get(live.url + "api/upload", buf.getvalue(), {"X-Filename": "grey.png"})
    assert status == 200
    uid = json.loads(body)["id"]
    fwd = json.loads(_get(live.url + f"api/forward/{uid}")[2])
    assert fwd["id"] == uid and len(fwd["prediction"]["probs"]) == 2


def _busy_port():
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s, s.getsockname()[1]


def test_a_port_in_use_is_named(monkeypatch):
    session = Session(PythonSource(_model(), _data()))
    sock, port = _busy_port()
    try:
        with pytest.raises(PortInUse) as e:
            make_server(session, port)
        assert f"port {port}" in e.value.strerror and "--port 0" in e.value.strerror
        # the default port falls back to the next ones, then gives up naming the range
        monkeypatch.setattr(srv, "DEFAULT_PORT", port)
        monkeypatch.setattr(srv, "FALLBACK_PORTS", 0)
        with pytest.raises(PortInUse, match=f"ports {port}..{port} .*--port 0"):
            make_server(session, None)
    finally:
        sock.close()


def test_default_port_falls_back_to_the_next_free_one(monkeypatch):
    session = Session(PythonSource(_model(), _data()))
    sock, port = _busy_port()
    try:
        monkeypatch.setattr(srv, "DEFAULT_PORT", port)
        monkeypatch.setattr(srv, "FALLBACK_PORTS", 40)
        server = make_server(session, None)
        try:
            assert port < server.server_address[1] <= port + 40
        finally:
            server.server_close()
    finally:
        sock.close()


def test_explore_returns_a_handle_and_prints_the_url(capsys):
    with explore(_model(), _data(), port=0, open_browser=False) as ex:
        out = capsys.readouterr().out
        assert f"serving Sequential at {ex.url} (Ctrl-C to stop)" in out
        assert _get(ex.url + "api/inputs?limit=2")[0] == 200
        assert ex._thread.is_alive() and not ex._thread.daemon
    assert not ex._thread.is_alive()  # the context manager stopped it
    ex.stop()  # idempotent


SCRIPT = '''
import numpy as np
import convnet.nn as nn
from convnet import explore

class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.c, self.f, self.l = nn.Conv2d(1, 2, 3), nn.Flatten(), nn.Linear(2 * 6 * 6, 3)

    def forward(self, x):
        return self.l(self.f(self.c(x)))

explore(Net(), np.zeros((3, 1, 8, 8), np.float32), port=0, open_browser=False)
print("end of script", flush=True)
'''


def test_a_script_keeps_serving_until_ctrl_c(tmp_path):
    import subprocess
    import sys
    import time

    f = tmp_path / "mine.py"
    f.write_text(SCRIPT)
    p = subprocess.Popen([sys.executable, str(f)], stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    try:
        url = p.stdout.readline().split(" at ")[1].split()[0]
        assert p.stdout.readline() == "end of script\n"
        time.sleep(0.3)
        assert p.poll() is None  # the script is over, the server still answers
        assert json.loads(_get(url + "api/meta")[2])["model"] == "Net"
    finally:
        out = ctrl_c(p)
    assert p.returncode == 0 and "Traceback" not in out and "KeyboardInterrupt" not in out
