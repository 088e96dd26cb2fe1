"""Rendering many objects in parallel with Blender, resumably, and writing the dataset index.

Each object is one Blender process (``blender_scripts/dataset_rendering.py``) run by a pool of
``workers`` threads, with a per-object timeout; with ``gpus``, worker slot ``i`` renders on
``CUDA_VISIBLE_DEVICES=gpus[i % len(gpus)]``. An object is complete once its done marker
(``<output_dir>/<id>/.done``) exists, written after its files were checked; a folder without it
is half-finished and is rendered again from scratch. Failures are logged with their reason
(``<output_dir>/failures.jsonl`` and ``_logs/<id>.log``) and the others go on.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from tqdm import tqdm

from mira.atomic import write_json_atomic
from mira.data.blender import ERROR_PREFIX, RENDER_SCRIPT, blender_command
from mira.data.index import INDEX_FILE, done_objects, read_done_marker, write_done_marker
from mira.progress import bar_disabled

LOGGER = logging.getLogger(__name__)
LOG_DIR = "_logs"
FAILURES_FILE = "failures.jsonl"
_SAFE_ID = re.compile(r"[^A-Za-z0-9_.-]+")


@dataclass
class RenderSettings:
    """Arguments of ``dataset_rendering.py`` shared by all objects, plus job control."""

    num_renders: int = 32
    resolution: int = 512
    engine: str = "CYCLES"
    samples: int = 128
    device: str = "CPU"
    camera_dist_min: float = 2.2
    camera_dist_max: float = 2.8
    elevation_min: float = -90.0
    elevation_max: float = 90.0
    only_northern_hemisphere: bool = False
    random_lighting: bool = False
    normalisation: str = "sphere"  # "sphere" (bounding sphere of radius 0.9) or "box" (largest side 1.6)
    denoise: bool = False
    save_depth: bool = False
    save_normal: bool = False
    save_mesh: str = "val"  # "val" (validation objects only), "all" or "none"
    seed: int = 0
    threads: int = 0  # Blender render threads per process; 0 = all cores
    timeout: float = 1800.0  # seconds per object

    def script_args(self, job: "RenderJob", output_dir: Path) -> list[str]:
        """The command-line arguments of ``dataset_rendering.py`` for ``job``."""
        args = [
            "--object_path", str(job.source_path), "--output_dir", str(output_dir), "--object_id", job.object_id,
            "--num_renders", str(self.num_renders), "--resolution", str(self.resolution),
            "--engine", self.engine, "--samples", str(self.samples), "--device", self.device,
            "--camera_dist_min", str(self.camera_dist_min), "--camera_dist_max", str(self.camera_dist_max),
            "--elevation_min", str(self.elevation_min), "--elevation_max", str(self.elevation_max),
            "--seed", str(object_seed(self.seed, job.object_id)), "--threads", str(self.threads),
            "--normalisation", self.normalisation,
        ]
        flags = {"--only_northern_hemisphere": self.only_northern_hemisphere, "--random_lighting": self.random_lighting,
                 "--denoise": self.denoise, "--save_depth": self.save_depth, "--save_normal": self.save_normal,
                 "--save_mesh": self.wants_mesh(job)}
        return args + [flag for flag, on in flags.items() if on]

    def wants_mesh(self, job: "RenderJob") -> bool:
        if self.save_mesh not in ("val", "all", "none"):
            raise ValueError(f"save_mesh must be 'val', 'all' or 'none', got '{self.save_mesh}'")
        return self.save_mesh == "all" or (self.save_mesh == "val" and job.split == "val")


@dataclass
class RenderJob:
    """One object to render: ``output_dir/<object_id>/`` from ``source_path``."""

    object_id: str
    source_path: Path
    split: str = "train"


@dataclass
class JobResult:
    object_id: str
    status: str  # "done", "skipped" (already complete) or "failed"
    reason: str = ""
    seconds: float = 0.0


@dataclass
class RunSummary:
    results: list[JobResult] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.results)

    @property
    def failed(self) -> list[JobResult]:
        return [r for r in self.results if r.status == "failed"]


def object_seed(seed: int, object_id: str) -> int:
    """A per-object camera seed, stable across runs."""
    return int.from_bytes(hashlib.sha256(f"{seed}:{object_id}".encode()).digest()[:4], "big") & 0x7FFFFFFF


def make_object_ids(paths: Iterable[Path]) -> dict[str, Path]:
    """``{object id: path}``: the file name without suffix (made filesystem-safe); a name used by
    several files gets a short hash of the path."""
    paths = [Path(p) for p in paths]
    stems = [(_SAFE_ID.sub("_", p.stem) or "object") for p in paths]
    ids = {}
    for path, stem in zip(paths, stems):
        object_id = stem
        if stems.count(stem) > 1 or stem.startswith((".", "_")):
            object_id = f"{stem.lstrip('._') or 'object'}_{hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:8]}"
        ids[object_id] = path
    return ids


# ----------------------------------------------------------------------------- one object
class _Processes:
    """Running Blender processes, so that an interrupt can stop them all."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: set[subprocess.Popen] = set()

    def add(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.add(process)

    def discard(self, process: subprocess.Popen) -> None:
        with self._lock:
            self._running.discard(process)

    def kill_all(self) -> None:
        with self._lock:
            for process in list(self._running):
                _kill_group(process)


def _kill_group(process: subprocess.Popen) -> None:
    """Kill the process and its children (it leads its own process group)."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def render_one(job: RenderJob, settings: RenderSettings, output_dir: Path, blender: Path,
               script: Path = RENDER_SCRIPT, gpu: str | None = None, processes: _Processes | None = None) -> JobResult:
    """Render one object unless it is complete; a half-finished folder is removed first."""
    object_dir = output_dir / job.object_id
    if read_done_marker(object_dir) is not None:
        return JobResult(job.object_id, "skipped")
    if object_dir.exists():
        shutil.rmtree(object_dir)
    log_path = output_dir / LOG_DIR / f"{job.object_id}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = blender_command(blender, script, settings.script_args(job, output_dir))
    environment = dict(os.environ)
    if gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = gpu
    started = time.perf_counter()
    reason = _run_blender(command, environment, log_path, settings.timeout, processes)
    if reason is None:
        reason = check_object_outputs(object_dir, settings.num_renders, settings.wants_mesh(job))
    seconds = time.perf_counter() - started
    if reason is not None:
        shutil.rmtree(object_dir, ignore_errors=True)
        return JobResult(job.object_id, "failed", reason, seconds)
    write_done_marker(object_dir, {
        "object_id": job.object_id, "split": job.split, "source_path": str(job.source_path),
        "num_renders": settings.num_renders, "resolution": settings.resolution, "engine": settings.engine,
        "seconds": seconds, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    })
    return JobResult(job.object_id, "done", "", seconds)


def _run_blender(command: list[str], environment: dict, log_path: Path, timeout: float,
                 processes: _Processes | None) -> str | None:
    """Run Blender with stdout+stderr in ``log_path``; None on success, else a one-line reason."""
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(command) + "\n")
        log.flush()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.PIPE, env=environment,
                                   start_new_session=True, text=True, errors="replace")
        if processes is not None:
            processes.add(process)
        try:
            _, stderr = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            _, stderr = process.communicate()
            log.write(stderr or "")
            return f"timeout: no result after {timeout:g} s"
        finally:
            if processes is not None:
                processes.discard(process)
        log.write(stderr or "")
    if process.returncode == 0:
        return None
    return _failure_reason(stderr or "", process.returncode)


def _failure_reason(stderr: str, returncode: int) -> str:
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    for line in reversed(lines):
        if line.startswith(ERROR_PREFIX):
            return line[len(ERROR_PREFIX):]
    detail = lines[-1] if lines else "no error message"
    if returncode < 0:
        return f"Blender killed by signal {-returncode} ({detail})"
    return f"Blender exited with status {returncode} ({detail})"


def check_object_outputs(object_dir: Path, num_renders: int, needs_mesh: bool) -> str | None:
    """None if every expected file is there, else what is missing."""
    missing = [name for name in ("transforms.json", "metadata.json") if not (object_dir / name).is_file()]
    missing += [f"{i:03d}.{suffix}" for i in range(num_renders) for suffix in ("png", "npy")
                if not (object_dir / f"{i:03d}.{suffix}").is_file()]
    if needs_mesh and not (object_dir / "mesh.ply").is_file():
        missing.append("mesh.ply")
    if missing:
        return f"incomplete output in {object_dir}: missing {', '.join(missing[:5])}" + (" ..." if len(missing) > 5 else "")
    return None


# ----------------------------------------------------------------------------- many objects
def render_all(jobs: list[RenderJob], settings: RenderSettings, output_dir: str | Path, blender: Path,
               workers: int = 1, gpus: list[str] | None = None, script: Path = RENDER_SCRIPT,
               progress: bool = True) -> RunSummary:
    """Render ``jobs`` with ``workers`` concurrent Blender processes; failures are logged, not raised."""
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    workers = max(1, workers)
    slots: queue.Queue[int] = queue.Queue()
    for slot in range(workers):
        slots.put(slot)
    processes = _Processes()
    summary = RunSummary()

    def run(job: RenderJob) -> JobResult:
        slot = slots.get()
        try:
            gpu = gpus[slot % len(gpus)] if gpus else None
            return render_one(job, settings, output_dir, blender, script, gpu, processes)
        except Exception as error:  # a bug or an OS error for one object must not stop the others
            return JobResult(job.object_id, "failed", f"{type(error).__name__}: {error}")
        finally:
            slots.put(slot)

    executor = ThreadPoolExecutor(max_workers=workers)
    try:
        futures = [executor.submit(run, job) for job in jobs]
        bar = tqdm(as_completed(futures), total=len(futures), desc="rendering", unit="object", disable=bar_disabled(progress))
        for future in bar:
            result = future.result()
            summary.results.append(result)
            if result.status == "failed":
                LOGGER.warning("object %s failed: %s", result.object_id, result.reason)
                _log_failure(output_dir, result, jobs)
            bar.set_postfix(done=summary.count("done"), failed=summary.count("failed"))
    except KeyboardInterrupt:
        executor.shutdown(wait=False, cancel_futures=True)
        processes.kill_all()
        raise
    executor.shutdown(wait=True)
    return summary


def _log_failure(output_dir: Path, result: JobResult, jobs: list[RenderJob]) -> None:
    source = next((str(j.source_path) for j in jobs if j.object_id == result.object_id), "")
    record = {"object_id": result.object_id, "source_path": source, "reason": result.reason,
              "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    with open(output_dir / FAILURES_FILE, "a") as stream:
        stream.write(json.dumps(record) + "\n")


def write_dataset_index(output_dir: str | Path, summary: RunSummary | None = None) -> dict:
    """Write ``index.json`` from every complete object folder (split from its done marker).

    Objects that failed in this run (and are not complete) are listed under ``"failed"``.
    """
    output_dir = Path(output_dir)
    complete = done_objects(output_dir)
    index = {
        "train": sorted(i for i, marker in complete.items() if marker.get("split", "train") != "val"),
        "val": sorted(i for i, marker in complete.items() if marker.get("split") == "val"),
        "objects": {i: {"status": "done", "split": m.get("split", "train"), "source_path": m.get("source_path", "")}
                    for i, m in complete.items()},
        "failed": {},
    }
    if summary is not None:
        index["failed"] = {r.object_id: r.reason for r in sorted(summary.failed, key=lambda r: r.object_id)
                           if r.object_id not in complete}
    write_json_atomic(index, output_dir / INDEX_FILE, indent=1)
    return index


def settings_from_namespace(values: dict) -> RenderSettings:
    """The :class:`RenderSettings` fields present in ``values`` (e.g. ``vars(argparse_namespace)``)."""
    names = {f.name for f in dataclasses.fields(RenderSettings)}
    return RenderSettings(**{k: v for k, v in values.items() if k in names and v is not None})
