"""Where device workers run: threads on this host (local, the default) or a Ray cluster.

local: one thread per device, all devices in parallel; each worker holds its device's
lock for the whole sweep and commits every cell to the store as it finishes.

ray: each device is a Ray custom resource (`device_resource(name)`, amount 1) offered
by the node the device is attached to, e.g. on each host

    ray start --address HEAD:6379 --resources '{"harness-device:127.0.0.1:5601": 1}'

(`harness lab resources DEVICE...` prints that JSON). Each device's task asks for its
resource, so it is scheduled where the device is, one at a time. Results go straight
into the shared store (use PostgreSQL across hosts). Without --address a local Ray
instance is started offering every device of the lab file. Model files travel with the
tasks (Ray's object store), so the hosts need no shared file system.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

from harness.cells import CellRecord
from harness.errors import HarnessError
from harness.lab.worker import DeviceOutcome, DeviceTask, ModelOutcome, run_device

RESOURCE_PREFIX = "harness-device:"


def run_local(
    tasks: list[DeviceTask], on_cell: Callable[[CellRecord], None] = lambda _: None
) -> list[DeviceOutcome]:
    """Every device in its own thread; outcomes in task order."""
    if not tasks:
        return []
    with ThreadPoolExecutor(max_workers=len(tasks), thread_name_prefix="lab-device") as pool:
        futures = [pool.submit(run_device, t, on_cell) for t in tasks]
        return [f.result() for f in futures]


def device_resource(name: str) -> str:
    """The Ray custom resource that stands for device `name`."""
    return RESOURCE_PREFIX + name


def run_ray(tasks: list[DeviceTask], address: str | None) -> list[DeviceOutcome]:
    """Each device's task on the Ray node that offers its resource."""
    ray = _import_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:  # a local cluster: this host offers every device of the lab
            resources = {device_resource(t.device.label): 1 for t in tasks}
            ray.init(resources=resources, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        offered = ray.cluster_resources()
        remote = ray.remote(num_cpus=0, max_retries=0)(_ray_task)
        pending = {}
        outcomes: dict[int, DeviceOutcome] = {}
        for i, task in enumerate(tasks):
            resource = device_resource(task.device.label)
            if offered.get(resource, 0) < 1:
                outcomes[i] = _not_offered(task, resource)
                continue
            bundle = ray.put(_bundle(task))
            ref = remote.options(resources={resource: 1}).remote(task, bundle)
            pending[i] = ref
        for i, ref in pending.items():
            outcomes[i] = ray.get(ref)
        return [outcomes[i] for i in range(len(tasks))]
    finally:
        if started:
            ray.shutdown()


def _import_ray():
    try:
        import ray
    except ImportError:
        raise HarnessError(
            "the ray executor needs Ray: pip install 'harness[ray]' (or use --executor local)"
        ) from None
    return ray


def _not_offered(task: DeviceTask, resource: str) -> DeviceOutcome:
    reason = (
        f"device unreachable: no Ray node offers the resource {resource!r} "
        "(start that host's node with --resources; see `harness lab resources`)"
    )
    models = tuple(
        ModelOutcome(pm.name, None, tuple(pm.cells_for(task.device.label, *task.grid)))
        for pm in task.models
    )
    return DeviceOutcome(task.device.label, task.device.label, models, None, reason)


# -- moving model files with the task -------------------------------------------------


def _bundle(task: DeviceTask) -> dict[str, bytes]:
    """Every file the task reads (model dirs/files, eval data), by absolute path."""
    files: dict[str, bytes] = {}
    for pm in task.models:
        if pm.spec is None:
            continue
        paths = [pm.spec.model, pm.spec.eval_path]
        for p in paths:
            if p is None:
                continue
            for f in sorted(Path(p).rglob("*")) if Path(p).is_dir() else [Path(p)]:
                if f.is_file():
                    files[str(f)] = f.read_bytes()
    return files


def _ray_task(task: DeviceTask, bundle: dict[str, bytes]) -> DeviceOutcome:
    """Runs on the device's node: put the files in place (unless already there), sweep."""
    task = _materialise(task, bundle)
    return run_device(task)


def _materialise(task: DeviceTask, bundle: dict[str, bytes]) -> DeviceTask:
    """Rewrite the task's paths to local copies where the originals are not here."""
    if all(_same(Path(p), data) for p, data in bundle.items()):
        return task  # same host (or a shared file system): use the files where they are
    digest = hashlib.sha256()
    for p in sorted(bundle):
        digest.update(p.encode() + b"\0" + hashlib.sha256(bundle[p]).digest())
    base = Path(os.environ.get("HARNESS_CACHE_DIR", Path.home() / ".cache" / "harness"))
    root = base / "lab-bundles" / digest.hexdigest()[:16]
    for p, data in bundle.items():
        target = root / p.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not _same(target, data):
            target.write_bytes(data)

    def moved(p: Path | None) -> Path | None:
        return None if p is None else root / str(p).lstrip("/")

    models = tuple(
        replace(
            pm,
            spec=replace(pm.spec, model=moved(pm.spec.model), eval_path=moved(pm.spec.eval_path)),
        )
        if pm.spec is not None
        else pm
        for pm in task.models
    )
    return replace(task, models=models)


def _same(path: Path, data: bytes) -> bool:
    try:
        return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data
    except OSError:
        return False
