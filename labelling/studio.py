"""Label Studio as a separate application: its own venv, SQLite database and data dir under <home>/labelstudio.

Label Studio pins Django and dozens of packages the project's environment does not want, so it never enters
.venv: :func:`install` creates ``<home>/labelstudio/venv`` with uv (the same uv ``make setup`` installs) and
installs the pinned ``label-studio`` from the registry. :func:`start` runs it on loopback with an admin user and a
legacy API token created non-interactively (its ``--username/--password/--user-token`` flags), telemetry and
version checks off, and writes ``url`` and ``credentials.json`` beside the database for the client.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from shoprank.settings import Settings

# Environment Label Studio reads with bare names too (USERNAME, PASSWORD, HOST, PORT): never inherit the shell's.
_SHADOWING_ENV = ("USERNAME", "PASSWORD", "HOST", "PORT", "DATABASE_NAME", "DJANGO_DB")


@dataclass(frozen=True)
class Connection:
    url: str
    token: str
    admin_email: str


def venv_dir(settings: Settings) -> Path:
    return settings.labelling.venv or settings.labelstudio_dir / "venv"


def executable(settings: Settings) -> Path:
    return venv_dir(settings) / "bin" / "label-studio"


def _uv() -> list[str]:
    found = shutil.which("uv")
    return [found] if found else [sys.executable, "-m", "uv"]


def install(settings: Settings) -> Path:
    """Create the Label Studio venv and install the pinned version (a no-op when that version is installed)."""
    version = settings.labelling.labelstudio_version
    marker = venv_dir(settings) / f".installed-{version}"
    if marker.exists() and executable(settings).exists():
        return executable(settings)
    settings.labelstudio_dir.mkdir(parents=True, exist_ok=True)
    if not (venv_dir(settings) / "bin" / "python").exists():
        subprocess.run([*_uv(), "venv", "--python", sys.executable, str(venv_dir(settings))], check=True)
    env = {**os.environ, "VIRTUAL_ENV": str(venv_dir(settings))}
    subprocess.run([*_uv(), "pip", "install", f"label-studio=={version}"], check=True, env=env)
    marker.touch()
    return executable(settings)


def free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _credentials(settings: Settings) -> dict[str, str]:
    """Admin password and API token: from the settings (environment) or generated once and kept beside the DB."""
    path = settings.labelstudio_dir / "credentials.json"
    cfg = settings.labelling
    stored = json.loads(path.read_text()) if path.exists() else {}
    password = cfg.admin_password.get_secret_value() if cfg.admin_password else stored.get("password")
    token = cfg.api_token.get_secret_value() if cfg.api_token else stored.get("token")
    creds = {
        "email": cfg.admin_email,
        "password": str(password or secrets.token_urlsafe(16)),
        "token": str(token or secrets.token_hex(20)),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(creds))
    path.chmod(0o600)
    return creds


def _env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _SHADOWING_ENV}
    env.update(
        {
            "LABEL_STUDIO_BASE_DATA_DIR": str(data_dir),
            "COLLECT_ANALYTICS": "false",
            "LATEST_VERSION_CHECK": "false",
            "SENTRY_DSN": "",
            "FRONTEND_SENTRY_DSN": "",
            "LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN": "true",
        }
    )
    return env


def start(settings: Settings, timeout: float = 900.0) -> Connection:
    """Start Label Studio on loopback (a free port unless settings pin one), wait until it answers, return how to
    reach it. Its first start applies the database migrations, which takes minutes."""
    exe = executable(settings)
    if not exe.exists():
        raise FileNotFoundError(f"Label Studio is not installed at {exe}: run `make labelstudio-install`")
    cfg = settings.labelling
    root = settings.labelstudio_dir
    data_dir = root / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    creds = _credentials(settings)
    port = cfg.port or free_port(cfg.host)
    url = f"http://{cfg.host}:{port}"
    log = (root / "labelstudio.log").open("ab")
    process = subprocess.Popen(
        [
            str(exe),
            "start",
            "--no-browser",
            "--internal-host",
            cfg.host,
            "--port",
            str(port),
            "--host",
            url,
            "--data-dir",
            str(data_dir),
            "--database",
            str(data_dir / "label_studio.sqlite3"),
            "--username",
            creds["email"],
            "--password",
            creds["password"],
            "--user-token",
            creds["token"],
            "--enable-legacy-api-token",
        ],
        env=_env(data_dir),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    (root / "pid").write_text(str(process.pid))
    wait_until_up(url, timeout, process)
    (root / "url").write_text(url)
    return Connection(url=url, token=creds["token"], admin_email=creds["email"])


def wait_until_up(url: str, timeout: float, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"Label Studio exited with code {process.returncode} before answering on {url}")
        try:
            if httpx.get(f"{url}/health", timeout=2.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(1.0)
    raise TimeoutError(f"Label Studio did not answer on {url}/health within {timeout:.0f} s")


def stop(settings: Settings) -> bool:
    """Stop the Label Studio this home started (its process group); False when none was running."""
    pid_file = settings.labelstudio_dir / "pid"
    if not pid_file.exists():
        return False
    pid = int(pid_file.read_text())
    pid_file.unlink()
    try:
        os.killpg(pid, 15)
    except ProcessLookupError:
        return False
    return True


def connection(settings: Settings) -> Connection:
    """How to reach the Label Studio `make labelstudio` started in this home."""
    url_file = settings.labelstudio_dir / "url"
    if not url_file.exists():
        raise FileNotFoundError(f"no Label Studio running for {settings.home_dir}: start it with `make labelstudio`")
    creds = _credentials(settings)
    return Connection(url=url_file.read_text().strip(), token=creds["token"], admin_email=creds["email"])
