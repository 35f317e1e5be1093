"""Where the model runs: `transcription.device` and `compute_type` resolved against this machine.

"auto" takes a CUDA GPU when CTranslate2 sees one and the CPU otherwise; "cuda" insists on the
GPU and is an error without one. `compute_type = "auto"` means int8 on the CPU (the fastest
there at no measured accuracy cost, see bench/README.md) and float16 on a GPU (what Whisper's
weights are; int8 saves GPU memory, not time). The plan is made before any work starts, so a
site that asks for a GPU it does not have hears it when the command starts, not after the first
recording has been downloaded.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from meeting_governance.errors import ConfigError
from meeting_governance.sizing import host_cores

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from meeting_governance.config import TranscriptionSettings

log = logging.getLogger(__name__)

DEFAULT_COMPUTE_TYPE = {"cpu": "int8", "cuda": "float16"}


@dataclass(frozen=True)
class DeviceProbe:
    """What CTranslate2 reports about this machine: GPUs and the compute types each side runs."""

    cuda_devices: int
    cpu_types: frozenset[str]
    cuda_types: frozenset[str] = frozenset()
    cuda_error: str = ""  # why CUDA is unusable although a device was counted

    @classmethod
    def detect(cls) -> DeviceProbe:
        """Ask CTranslate2 (cheap: no model is loaded, nothing is downloaded)."""
        import ctranslate2

        cpu_types = frozenset(ctranslate2.get_supported_compute_types("cpu"))
        try:
            count = int(ctranslate2.get_cuda_device_count())
        except RuntimeError:
            count = 0  # a CTranslate2 build without CUDA
        cuda_types: frozenset[str] = frozenset()
        error = ""
        if count:
            try:
                cuda_types = frozenset(ctranslate2.get_supported_compute_types("cuda"))
            except RuntimeError as exc:  # e.g. a driver older than the CUDA runtime
                error = str(exc)
        return cls(count, cpu_types, cuda_types, error)


@dataclass(frozen=True)
class DevicePlan:
    """The device, compute type and CPU threads the model is loaded with, and why."""

    device: str
    compute_type: str
    cpu_threads: int
    reason: str


def plan_device(settings: TranscriptionSettings, probe: DeviceProbe) -> DevicePlan:
    """Resolve `device` and `compute_type` for this machine; ConfigError names what to change."""
    wanted = settings.device
    threads = settings.cpu_threads or host_cores()
    usable_gpu = probe.cuda_devices > 0 and not probe.cuda_error
    if wanted == "cuda" and not usable_gpu:
        why = (f"CTranslate2 cannot use it: {probe.cuda_error}" if probe.cuda_devices
               else "CTranslate2 sees no CUDA device on this machine")
        raise ConfigError(
            f"transcription.device = \"cuda\" but {why}; install the NVIDIA driver and the CUDA "
            "12 libraries (cuBLAS, cuDNN 9) that ctranslate2 needs, or set "
            "transcription.device = \"auto\" (the GPU when there is one) or \"cpu\" "
            "(MG_TRANSCRIPTION__DEVICE)")
    if wanted == "cpu":
        device, reason = "cpu", "transcription.device = cpu"
    elif usable_gpu:
        device, reason = "cuda", f"{probe.cuda_devices} CUDA device(s) found"
    elif probe.cuda_devices:
        device, reason = "cpu", f"CUDA device unusable ({probe.cuda_error}); using the CPU"
    else:
        device, reason = "cpu", "no CUDA device; using the CPU"
    compute_type: str = settings.compute_type
    if compute_type == "auto":
        compute_type = DEFAULT_COMPUTE_TYPE[device]
    supported = probe.cuda_types if device == "cuda" else probe.cpu_types
    if supported and compute_type not in supported:
        raise ConfigError(
            f"transcription.compute_type = {settings.compute_type!r} is not supported on {device} "
            f"here (supported: {', '.join(sorted(supported))}); set it to \"auto\" "
            f"({DEFAULT_COMPUTE_TYPE['cpu']} on the CPU, {DEFAULT_COMPUTE_TYPE['cuda']} on a "
            "GPU) or one of those (MG_TRANSCRIPTION__COMPUTE_TYPE)")
    return DevicePlan(device, compute_type, threads, reason)


def _warm_up(model: WhisperModel) -> None:
    """One encoder pass over 30 s of silence: CTranslate2 opens cuBLAS/cuDNN only on first use,
    so a GPU without them fails here, at load, rather than in the middle of a recording."""
    import numpy as np

    frames = model.feature_extractor.nb_max_frames
    model.encode(np.full((model.model.n_mels, frames), -1.5, dtype=np.float32))


def load_whisper(path: Path, settings: TranscriptionSettings,
                 probe: DeviceProbe | None = None) -> tuple[WhisperModel, DevicePlan]:
    """Load the model where the plan says; "auto" falls back to the CPU if the GPU fails.

    Local files only: nothing is downloaded. A failure names the setting to change."""
    from faster_whisper import WhisperModel

    probe = probe or DeviceProbe.detect()
    plan = plan_device(settings, probe)
    try:
        model = WhisperModel(str(path), device=plan.device, compute_type=plan.compute_type,
                             cpu_threads=plan.cpu_threads, local_files_only=True)
        if plan.device == "cuda":
            _warm_up(model)
    except (RuntimeError, ValueError, OSError) as exc:
        if plan.device != "cuda" or settings.device != "auto":
            raise ConfigError(
                f"cannot load transcription model {settings.model!r} from {path} on "
                f"{plan.device} ({plan.compute_type}): {exc}; check transcription.model, "
                "transcription.device and transcription.compute_type") from None
        log.warning("transcription: the GPU could not run the model; using the CPU",
                    extra={"error": str(exc)[:200]})
        cpu_settings = settings.model_copy(update={"device": "cpu", "compute_type": "auto"})
        model, plan = load_whisper(path, cpu_settings, probe)
        plan = replace(plan, reason=f"GPU failed ({str(exc)[:120]}); using the CPU")
    log.info("transcription device", extra={"device": plan.device,
                                            "compute_type": plan.compute_type,
                                            "cpu_threads": plan.cpu_threads, "why": plan.reason})
    return model, plan
