"""`transcription.device` and `compute_type`: resolved against what CTranslate2 reports here.

This machine has no GPU, so the CPU paths and the "CUDA asked for but absent" error are the real
ones. The GPU plans are checked against a `DeviceProbe` holding what CTranslate2 reports on a
CUDA machine (data, not a patched function); loading on a counted-but-unusable GPU runs the
real CTranslate2, which fails here as it does on a machine without a working driver.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from pathlib import Path

import ctranslate2
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meeting_governance.config import TranscriptionSettings, load_settings
from meeting_governance.device import DeviceProbe, load_whisper, plan_device
from meeting_governance.errors import ConfigError
from meeting_governance.transcribe import Transcriber, resolve_model

# What CTranslate2 4.x answers on a CUDA machine with compute capability >= 8 (A100, H100/H200).
GPU_TYPES = frozenset({"float32", "float16", "bfloat16", "int8", "int8_float32", "int8_float16",
                       "int8_bfloat16", "int16"})
CPU_TYPES = frozenset(ctranslate2.get_supported_compute_types("cpu"))
GPU = DeviceProbe(cuda_devices=1, cpu_types=CPU_TYPES, cuda_types=GPU_TYPES)
DEVICES = ("auto", "cpu", "cuda")
COMPUTE = ("auto", "int8", "int8_float32", "int8_float16", "int8_bfloat16", "int16", "float16",
           "bfloat16", "float32")


def settings(**values: object) -> TranscriptionSettings:
    return TranscriptionSettings(**values)  # type: ignore[arg-type]


def test_this_machine_has_no_cuda_device_and_the_probe_says_so() -> None:
    probe = DeviceProbe.detect()

    assert probe.cuda_devices == ctranslate2.get_cuda_device_count() == 0
    assert "int8" in probe.cpu_types
    assert probe.cpu_types == CPU_TYPES


def test_auto_falls_back_to_the_cpu_with_int8_and_says_why() -> None:
    plan = plan_device(settings(), DeviceProbe.detect())

    assert (plan.device, plan.compute_type) == ("cpu", "int8")
    assert "no CUDA device" in plan.reason


def test_cuda_asked_for_without_a_gpu_is_a_config_error_naming_the_fix() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_device(settings(device="cuda"), DeviceProbe.detect())

    message = str(caught.value)
    assert 'transcription.device = "cuda"' in message
    assert "sees no CUDA device" in message
    assert '"cpu"' in message and "MG_TRANSCRIPTION__DEVICE" in message


def test_the_check_runs_before_any_model_is_loaded() -> None:
    transcriber = Transcriber(settings(device="cuda"))

    with pytest.raises(ConfigError, match="no CUDA device"):
        transcriber.check()
    assert transcriber._model is None


def test_a_missing_model_is_reported_by_the_check_too(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="neither a known model"):
        Transcriber(settings(model=str(tmp_path / "nowhere"))).check()


def test_a_gpu_machine_gets_float16_on_cuda_by_default() -> None:
    plan = plan_device(settings(), GPU)

    assert (plan.device, plan.compute_type) == ("cuda", "float16")
    assert plan_device(settings(device="cuda"), GPU).device == "cuda"
    assert plan_device(settings(device="cuda", compute_type="int8_float16"), GPU).compute_type == \
        "int8_float16"


def test_cpu_on_a_gpu_machine_stays_on_the_cpu() -> None:
    plan = plan_device(settings(device="cpu"), GPU)

    assert (plan.device, plan.compute_type) == ("cpu", "int8")


def test_a_type_the_device_cannot_run_is_refused_with_the_supported_ones() -> None:
    with pytest.raises(ConfigError) as caught:
        plan_device(settings(compute_type="float16"), DeviceProbe.detect())

    message = str(caught.value)
    assert "'float16' is not supported on cpu" in message
    for name in CPU_TYPES:
        assert name in message


def test_a_counted_but_broken_gpu_is_named_in_the_error() -> None:
    broken = DeviceProbe(cuda_devices=1, cpu_types=CPU_TYPES,
                         cuda_error="CUDA driver version is insufficient for CUDA runtime version")

    assert plan_device(settings(), broken).device == "cpu"
    with pytest.raises(ConfigError, match="driver version is insufficient"):
        plan_device(settings(device="cuda"), broken)


@given(device=st.sampled_from(DEVICES), compute=st.sampled_from(COMPUTE),
       gpus=st.integers(0, 4), broken=st.booleans())
def test_a_plan_is_always_runnable_or_an_error(device: str, compute: str, gpus: int,
                                               broken: bool) -> None:
    probe = DeviceProbe(cuda_devices=gpus, cpu_types=CPU_TYPES,
                        cuda_types=GPU_TYPES if gpus and not broken else frozenset(),
                        cuda_error="driver too old" if gpus and broken else "")
    usable = gpus > 0 and not broken
    try:
        plan = plan_device(settings(device=device, compute_type=compute), probe)
    except ConfigError as exc:
        assert (device == "cuda" and not usable) or "is not supported" in str(exc)
        return
    assert plan.device in ("cpu", "cuda")
    assert plan.device == "cuda" or device != "cuda"
    assert plan.device == "cpu" or usable
    assert plan.device == "cpu" or device != "cpu"
    assert plan.compute_type in (GPU_TYPES if plan.device == "cuda" else CPU_TYPES)
    if compute == "auto":
        assert plan.compute_type == {"cpu": "int8", "cuda": "float16"}[plan.device]
    assert plan.cpu_threads >= 1


@pytest.mark.slow
def test_the_model_loads_on_the_cpu_as_planned() -> None:
    model, plan = load_whisper(resolve_model("tiny.en"), settings(cpu_threads=1))

    assert (plan.device, plan.compute_type, plan.cpu_threads) == ("cpu", "int8", 1)
    assert model.model.device == "cpu"
    assert model.model.compute_type.startswith("int8")


@pytest.mark.slow
def test_auto_falls_back_to_the_cpu_when_the_gpu_cannot_run_the_model(
        caplog: pytest.LogCaptureFixture) -> None:
    # The probe counts a GPU; the real CTranslate2 then fails to use it (no driver here).
    with caplog.at_level(logging.INFO, logger="meeting_governance.device"):
        model, plan = load_whisper(resolve_model("tiny.en"), settings(cpu_threads=1), GPU)

    assert plan.device == "cpu" and plan.compute_type == "int8"
    assert "GPU failed" in plan.reason
    assert model.model.device == "cpu"
    assert any(r.levelno == logging.WARNING and "using the CPU" in r.getMessage()
               for r in caplog.records)


@pytest.mark.slow
def test_cuda_insisted_on_and_failing_to_load_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as caught:
        load_whisper(resolve_model("tiny.en"), settings(device="cuda"), GPU)

    message = str(caught.value)
    assert "on cuda (float16)" in message
    assert "transcription.device" in message


def test_device_and_compute_type_are_validated_and_overridable(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("MG_TRANSCRIPTION__DEVICE", "cpu")
    monkeypatch.setenv("MG_TRANSCRIPTION__COMPUTE_TYPE", "float32")
    loaded = load_settings(None, home=tmp_path)
    assert (loaded.transcription.device, loaded.transcription.compute_type) == ("cpu", "float32")

    monkeypatch.setenv("MG_TRANSCRIPTION__DEVICE", "gpu")
    with pytest.raises(ConfigError, match=r"transcription\.device.*'auto', 'cpu' or 'cuda'"):
        load_settings(None, home=tmp_path)
    monkeypatch.delenv("MG_TRANSCRIPTION__DEVICE")
    monkeypatch.setenv("MG_TRANSCRIPTION__COMPUTE_TYPE", "fp16")
    with pytest.raises(ConfigError, match=r"transcription\.compute_type.*'float16'"):
        load_settings(None, home=tmp_path)


def _cli(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    import os

    child = {k: v for k, v in os.environ.items() if not k.startswith("MG_")}
    child.update({"MG_HOME": str(home), "HF_HUB_OFFLINE": "1", **env})
    return subprocess.run([sys.executable, "-m", "meeting_governance", *args], env=child,
                          capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow
def test_the_daemon_refuses_cuda_at_once_with_one_line(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert _cli(home, "init").returncode == 0

    done = _cli(home, "daemon", MG_TRANSCRIPTION__DEVICE="cuda", MG_DAEMON__METRICS_PORT="0")

    assert done.returncode == 2, done.stderr
    assert 'transcription.device = "cuda"' in done.stderr
    assert "Traceback" not in done.stderr
    log = home / "logs" / "meeting-governance.jsonl"
    started = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    assert not any(entry.get("msg") == "daemon started" for entry in started)
