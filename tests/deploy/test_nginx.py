"""deploy/nginx passes ``nginx -t`` in both of its set-ups.

- docker compose: the official image's nginx.conf includes conf.d/*.conf in
  its http block; herald-lb.conf and backends-compose.conf are mounted there.
  Replayed here with an equivalent main file.
- make up-local: nginx-local.conf as it is.

nginx must be installed (``make test-deps`` installs Debian's nginx-light,
listed in tests/system-packages.txt; ``make test`` stops before pytest when
it is missing). Run without ``make``, a missing nginx fails these tests
rather than skipping them. The end-to-end test with real traffic is
tests/e2e/test_operations.py.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from herald.testing.topology import nginx_binary
from tests.deploy.conftest import REPO

NGINX_DIR = REPO / "deploy" / "nginx"


@pytest.fixture
def nginx() -> str:
    binary = nginx_binary()
    assert binary, "nginx is not installed: run `make test-deps` (apt-get install nginx-light)"
    return binary


def _check(nginx: str, prefix: Path, conf: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([nginx, "-t", "-p", str(prefix), "-c", str(conf)],
                          capture_output=True, text=True, timeout=30)


def _compose_main(tmp_path: Path, backends: str = "backends-compose.conf") -> Path:
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    shutil.copy(NGINX_DIR / "herald-lb.conf", conf_d / "default.conf")
    # nginx -t resolves an upstream's server names, and ws-gateway exists
    # only in Docker's DNS: here it is localhost, everything else as shipped.
    text = (NGINX_DIR / backends).read_text()
    (conf_d / "backends.conf").write_text(text.replace("server ws-gateway:", "server localhost:"))
    main = tmp_path / "nginx.conf"
    # What the official image's /etc/nginx/nginx.conf does, with paths that a
    # non-root test can write to.
    main.write_text(f"""worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    client_body_temp_path {tmp_path}/body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    access_log off;
    include {conf_d}/*.conf;
}}
""")
    return main


def test_compose_configuration(nginx: str, tmp_path: Path) -> None:
    result = _check(nginx, tmp_path, _compose_main(tmp_path))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


def test_up_local_configuration(nginx: str, tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    shutil.copytree(NGINX_DIR, conf)  # relative includes resolve beside the file
    result = _check(nginx, tmp_path, conf / "nginx-local.conf")
    assert result.returncode == 0, result.stderr


def test_nginx_t_rejects_a_broken_file(nginx: str, tmp_path: Path) -> None:
    # Without a backends file the proxy_pass variables are undefined: the
    # check must say so (it really parses the files).
    main = _compose_main(tmp_path)
    (tmp_path / "conf.d" / "backends.conf").unlink()
    result = _check(nginx, tmp_path, main)
    assert result.returncode != 0
    assert "herald_api_backend" in result.stderr
