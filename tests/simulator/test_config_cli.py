"""Settings (scenario files, fault validation) and the `dialer simulator` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from click.testing import CliRunner

from dialer.cli.simulator_cmd import simulator
from dialer.simulator import DEFAULT_MIX, FaultConfig, SimulatorConfig, load_scenarios_file

REPO = Path(__file__).resolve().parents[2]


def test_load_scenarios_file_toml_and_json(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('[mix]\nhuman = 3\nbusy = 1\n\n[numbers]\n"+15550000001" = "fax"\n')
    assert load_scenarios_file(toml) == ({"human": 3.0, "busy": 1.0}, {"+15550000001": "fax"})
    js = tmp_path / "s.json"
    js.write_text(json.dumps({"numbers": {"+15550000002": "no_answer"}}))
    assert load_scenarios_file(js) == (DEFAULT_MIX, {"+15550000002": "no_answer"})


@pytest.mark.parametrize("text,message", [
    ("[mix]\nhuman = -1\n", "must be >= 0"),
    ("[mix]\nrobot = 1\n", "unknown scenario 'robot'"),
    ("[numbers]\n\"+1555\" = \"robot\"\n", "unknown scenario 'robot'"),
    ("[mix]\nhuman = 0\n", "positive weight"),
    ("[people]\n", "unknown table"),
    ("mix = 1\n", "must be tables"),
    ("[mix\n", "not valid"),
])
def test_bad_scenarios_files_say_what_is_wrong(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        load_scenarios_file(path)
    with pytest.raises(ValueError, match="cannot read"):
        load_scenarios_file(tmp_path / "missing.toml")


def test_config_validation() -> None:
    with pytest.raises(ValueError):
        FaultConfig(drop=1.5)
    with pytest.raises(ValueError):
        FaultConfig(delay_secs=-1)
    with pytest.raises(ValueError):
        FaultConfig.from_mapping({"nope": 1})
    with pytest.raises(ValueError):
        SimulatorConfig(speed=0)
    with pytest.raises(ValueError):
        SimulatorConfig(pinned={"+1555": "robot"})
    assert SimulatorConfig().dials_per_window == 150
    assert sum(SimulatorConfig().mix.values()) == pytest.approx(1.0)


def test_help_shows_every_env_var() -> None:
    result = CliRunner().invoke(simulator, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for var in ("DIALER_SIMULATOR_PRIVATE_KEY", "DIALER_SIMULATOR_API_KEY", "DIALER_SIMULATOR_PORT",
                "DIALER_SIMULATOR_WEBHOOK_URL", "DIALER_SIMULATOR_SPEED"):
        assert var in result.output
    for flag in ("--fault-duplicate", "--fault-reorder", "--fault-delay", "--fault-drop",
                 "--fault-dial-5xx", "--fault-dial-slow", "--scenarios", "--public-key-file",
                 "--cps-limit", "--channels", "--seed", "--webhook-url"):
        assert flag in result.output


def test_user_errors_are_one_clear_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[mix]\nrobot = 1\n")
    result = CliRunner().invoke(simulator, ["--scenarios", str(bad)])
    assert result.exit_code == 2 and "unknown scenario 'robot'" in result.output
    result = CliRunner().invoke(simulator, ["--fault-drop", "3"])
    assert result.exit_code == 2 and "--fault-drop" in result.output
    result = CliRunner().invoke(simulator, ["--private-key", "not-a-key"])
    assert result.exit_code == 2 and "--private-key" in result.output
    assert "Traceback" not in result.output


def test_runs_as_a_process_until_sigterm(tmp_path: Path) -> None:
    from dialer.telnyx.signatures import generate_keypair

    private, public = generate_keypair()
    key_file = tmp_path / "public.key"
    env = {**os.environ, "DIALER_SIMULATOR_PRIVATE_KEY": private, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from dialer.cli.simulator_cmd import simulator; simulator()",
         "--port", "0", "--public-key-file", str(key_file), "--speed", "100"],
        cwd=REPO, env=env, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 20
        api_url = None
        lines = []
        while time.monotonic() < deadline:  # read the banner up to its last line
            line = proc.stderr.readline()
            lines.append(line)
            if "API URL" in line:
                api_url = line.rsplit(" ", 1)[-1].strip()
            if "Ctrl-C to stop" in line or (not line and proc.poll() is not None):
                break
        assert api_url and api_url.startswith("http://127.0.0.1:"), lines
        assert key_file.read_text().strip() == public
        req = urllib.request.Request(
            api_url + "/calls", method="POST",
            data=json.dumps({"to": "+15550000001", "from": "+15550000002",
                             "connection_id": "c"}).encode(),
            headers={"Authorization": "Bearer k", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:
            assert resp.status == 200
            assert json.load(resp)["data"]["call_control_id"].startswith("v3:")
        proc.send_signal(signal.SIGTERM)
        _, rest = proc.communicate(timeout=10)
        assert proc.returncode == 0, rest
        assert f"Webhook public key: {public}" in "".join(lines)
        assert "Stopped. 1 calls placed" in rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
