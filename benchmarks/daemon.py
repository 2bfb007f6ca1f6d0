"""The daemon over loopback: end-to-end step cost against pure transfer, concurrency, memory.

    swift build -c release --product optimizerd
    python3 benchmarks/daemon.py e2e          [--sizes 1M,10M] [--repeats 7]
    python3 benchmarks/daemon.py concurrency  [--clients 1,8,64] [--seconds 5]
    python3 benchmarks/daemon.py memory       [--parameters 4M]
    python3 benchmarks/daemon.py all --json results.json

Each part starts its own release daemon (a temporary data directory, --fsync never so the disk
does not dominate; benchmarks/fsync_cost.py measures that) and reports ratios to a baseline timed in
the same run: a step next to a PUT+GET of the same bytes on the same connection; steps/s next to
/healthz requests/s with the same number of clients; /healthz latency during 32M-parameter steps next
to the idle daemon's. Machines here are shared and noisy: read the ratios, not the absolute times.
The client sends pre-encoded bodies over http.client, so the figures are the daemon's, not the
Python client's serialisation.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, List

import numpy as np
from safetensors.numpy import save

sys.path.insert(0, str(Path(__file__).resolve().parent))
import loopback  # noqa: E402
from loopback import (  # noqa: E402
    DEFAULT_BINARY,
    Connection,
    checked,
    create_session,
    daemon,
    parse_count,
    percentile,
    reset_peak,
    rss_bytes,
    safetensors_bytes,
)

# MARK: - End to end


@dataclass
class Variant:
    label: str
    dtype: str  # wire dtype both ways: F32 or BF16
    gzip: bool


VARIANTS = [Variant("f32", "F32", False), Variant("bf16", "BF16", False), Variant("f32+gzip", "F32", True)]


def end_to_end(
    binary: Path, sizes: List[int], repeats: int, log: Callable[[str], None]
) -> List[Dict[str, Any]]:
    """A step (gradients up, parameters down) split into its phases, next to PUT+GET of the same bytes."""
    rows = []
    rng = np.random.default_rng(0)
    with daemon(binary) as running:
        port = running.port
        for count in sizes:
            params = {"w": rng.standard_normal(count).astype(np.float32)}
            gradient = {"w": (rng.standard_normal(count) * 1e-2).astype(np.float32)}
            for variant in VARIANTS:
                session, token = create_session(port, {"optimizer": "adam"})
                connection = Connection(port, token)
                path = f"/v1/sessions/{session}"
                query = f"?dtype={variant.dtype.lower()}"
                param_body = safetensors_bytes(params, variant.dtype)
                upload_headers = {"Content-Type": "application/octet-stream"}
                download_headers: Dict[str, str] = {}
                if variant.gzip:
                    param_body = gzip.compress(param_body, compresslevel=1)
                    upload_headers["Content-Encoding"] = "gzip"
                    download_headers["Accept-Encoding"] = "gzip"
                step_body = safetensors_bytes(gradient, variant.dtype)
                if variant.gzip:
                    step_body = gzip.compress(step_body, compresslevel=1)

                transfers, steps = [], []
                checked(
                    connection.request("PUT", path + "/parameters", param_body, upload_headers),
                    "PUT parameters",
                )
                for k in range(repeats + 2):
                    # Interleaved, so both see the same machine: PUT+GET of the parameters' bytes, then a step.
                    put = checked(
                        connection.request("PUT", path + "/parameters", param_body, upload_headers), "PUT"
                    )
                    get = checked(
                        connection.request("GET", path + "/parameters" + query, None, download_headers), "GET"
                    )
                    step = checked(
                        connection.request(
                            "POST",
                            path + "/step" + query + "&return=params",
                            step_body,
                            {**upload_headers, **download_headers},
                        ),
                        "step",
                    )
                    if k >= 2:  # the first two are warm-up
                        transfers.append(put.total + get.total)
                        steps.append(step)
                connection.close()

                timing = [s.server_timing() for s in steps]
                phase = lambda *names, timing=timing: statistics.median(  # noqa: E731
                    sum(t.get(n, 0.0) for n in names) for t in timing
                )
                step_total = statistics.median(s.total for s in steps)
                transfer_total = statistics.median(transfers)
                row = {
                    "parameters": count,
                    "variant": variant.label,
                    "request_bytes": len(step_body),
                    "response_bytes": len(steps[-1].body),
                    "step_seconds": step_total,
                    "transfer_seconds": transfer_total,
                    "ratio": step_total / transfer_total,
                    "upload": phase("receive"),
                    "decode": phase("decode"),
                    "step": phase("wait", "validate", "log", "apply"),
                    "phases": {
                        name: phase(name)
                        for name in (
                            "receive",
                            "decode",
                            "wait",
                            "validate",
                            "log",
                            "apply",
                            "encode",
                        )
                    },
                    "encode": phase("encode"),
                    "download": statistics.median(s.download for s in steps),
                }
                row["other"] = max(
                    0.0, step_total - sum(row[k] for k in ("upload", "decode", "step", "encode", "download"))
                )
                rows.append(row)
                log(
                    f"{count / 1e6:6.1f}M {variant.label:<9} {row['request_bytes'] / 1e6:8.1f} MB  step {step_total * 1e3:8.1f} ms"
                    f" = upload {row['upload'] * 1e3:6.1f} + decode {row['decode'] * 1e3:5.1f} + step {row['step'] * 1e3:6.1f}"
                    f" + encode {row['encode'] * 1e3:5.1f} + download {row['download'] * 1e3:6.1f} + other {row['other'] * 1e3:5.1f}"
                    f" | PUT+GET {transfer_total * 1e3:8.1f} ms | {row['ratio']:5.2f}x"
                )
                log(
                    "               server phases (ms): "
                    + ", ".join(f"{k} {v * 1e3:.1f}" for k, v in row["phases"].items())
                )
    return rows


# MARK: - Concurrency


def run_clients(count: int, seconds: float, work: Callable[[int], Callable[[], None]]) -> List[float]:
    """`count` threads, each calling its own work function until the time is up; returns latencies."""
    latencies: List[List[float]] = [[] for _ in range(count)]
    errors: List[BaseException] = []
    barrier = threading.Barrier(count + 1)
    stop = [0.0]

    def worker(index: int) -> None:
        try:
            call = work(index)
            barrier.wait()
            while time.perf_counter() < stop[0]:
                start = time.perf_counter()
                call()
                latencies[index].append(time.perf_counter() - start)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
            try:
                barrier.abort()
            except threading.BrokenBarrierError:
                pass

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    stop[0] = time.perf_counter() + seconds + 3600
    barrier.wait()
    stop[0] = time.perf_counter() + seconds
    for thread in threads:
        thread.join()
    if errors:
        raise RuntimeError(f"a client failed: {errors[0]!r}")
    return [latency for per_client in latencies for latency in per_client]


def concurrency(
    binary: Path, clients: List[int], seconds: float, log: Callable[[str], None]
) -> Dict[str, Any]:
    rows = []
    models = {"small": 10_000, "large": 1_000_000}
    rng = np.random.default_rng(1)
    with daemon(binary) as running:
        port = running.port
        for n in clients:

            def healthz(_: int) -> Callable[[], None]:
                connection = Connection(port)
                return lambda: checked(connection.request("GET", "/healthz"), "healthz") and None

            floor = run_clients(n, seconds, healthz)
            floor_rate = len(floor) / seconds
            for label, count in models.items():

                def client(index: int, count: int = count, mode: str = "step") -> Callable[[], None]:
                    session, token = create_session(port, {"optimizer": "adam"})
                    connection = Connection(port, token)
                    path = f"/v1/sessions/{session}"
                    params = safetensors_bytes({"w": rng.standard_normal(count).astype(np.float32)}, "F32")
                    checked(connection.request("PUT", path + "/parameters", params), "PUT parameters")
                    if mode == "transfer":

                        def transfer() -> None:
                            checked(connection.request("PUT", path + "/parameters", params), "PUT")
                            checked(connection.request("GET", path + "/parameters"), "GET")

                        return transfer
                    body = safetensors_bytes(
                        {"w": (rng.standard_normal(count) * 1e-2).astype(np.float32)}, "F32"
                    )
                    return lambda: (
                        checked(connection.request("POST", path + "/step?return=params", body), "step")
                        and None
                    )

                transfers = run_clients(n, seconds, lambda i: client(i, mode="transfer"))
                latencies = run_clients(n, seconds, client)
                row = {
                    "clients": n,
                    "model": label,
                    "parameters": count,
                    "steps_per_second": len(latencies) / seconds,
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "transfers_per_second": len(transfers) / seconds,
                    "transfer_p50": percentile(transfers, 50),
                    "healthz_per_second": floor_rate,
                }
                rows.append(row)
                log(
                    f"{n:3d} clients  {label:<5} ({count:>9,} params)  {row['steps_per_second']:8.1f} steps/s"
                    f"  p50 {row['p50'] * 1e3:7.1f} ms  p99 {row['p99'] * 1e3:7.1f} ms"
                    f"  | PUT+GET {row['transfers_per_second']:8.1f}/s p50 {row['transfer_p50'] * 1e3:7.1f} ms"
                    f" ({row['steps_per_second'] / row['transfers_per_second']:4.2f}x)  | /healthz alone {floor_rate:7.0f} req/s"
                )

        # /healthz while 32M-parameter steps run back to back, next to the idle daemon.
        big = 32_000_000
        session, token = create_session(port, {"optimizer": "adam"})
        worker = Connection(port, token)
        path = f"/v1/sessions/{session}"
        checked(
            worker.request(
                "PUT", path + "/parameters", safetensors_bytes({"w": np.zeros(big, np.float32)}, "F32")
            ),
            "PUT",
        )
        body = safetensors_bytes({"w": np.full(big, 1e-3, np.float32)}, "F32")
        probe = Connection(port)

        def probe_for(duration: float) -> List[float]:
            samples = []
            deadline = time.perf_counter() + duration
            while time.perf_counter() < deadline:
                samples.append(checked(probe.request("GET", "/healthz"), "healthz").total)
                time.sleep(0.005)
            return samples

        idle = probe_for(2)
        busy_steps = [0]
        running_flag = [True]

        def steps() -> None:
            while running_flag[0]:
                checked(worker.request("POST", path + "/step?return=none", body), "32M step")
                busy_steps[0] += 1

        stepping = threading.Thread(target=steps, daemon=True)
        stepping.start()
        time.sleep(0.5)
        busy = probe_for(max(4.0, seconds))
        running_flag[0] = False
        stepping.join()
        healthz = {
            "idle_p50": percentile(idle, 50), "idle_p99": percentile(idle, 99), "idle_max": max(idle),
            "busy_p50": percentile(busy, 50), "busy_p99": percentile(busy, 99), "busy_max": max(busy),
            "busy_probes": len(busy), "steps_during": busy_steps[0],
        }  # fmt: skip
        log(
            f"/healthz during 32M steps ({busy_steps[0]} steps, {len(busy)} probes): p50 {healthz['busy_p50'] * 1e3:.2f} ms"
            f"  p99 {healthz['busy_p99'] * 1e3:.2f} ms  max {healthz['busy_max'] * 1e3:.2f} ms"
            f" | idle: p50 {healthz['idle_p50'] * 1e3:.2f} ms  p99 {healthz['idle_p99'] * 1e3:.2f} ms"
        )
    return {"rows": rows, "healthz_during_large_step": healthz}


MEMORY_CASES = [
    ("adam", {"optimizer": "adam"}, False),
    ("adam amsgrad", {"optimizer": "adam", "hyperparameters": {"amsgrad": True}}, False),
    ("adamw", {"optimizer": "adamw"}, False),
    ("sgd", {"optimizer": "sgd"}, False),
    ("sgd momentum", {"optimizer": "sgd", "hyperparameters": {"momentum": 0.9}}, False),
    ("adafactor", {"optimizer": "adafactor"}, False),
    ("momo", {"optimizer": "momo"}, True),
    ("momo_adam", {"optimizer": "momo_adam"}, True),
    ("acclip", {"optimizer": "acclip"}, False),
    ("mtadam K=2", {"optimizer": "mtadam", "hyperparameters": {"terms": 2}}, False),
]


def memory(binary: Path, parameters: int, log: Callable[[str], None]) -> Dict[str, Any]:
    """Resident bytes per parameter of each optimizer's state, and the peak during a step.

    The daemons run with MALLOC_MMAP_THRESHOLD_=65536: every buffer of 64 KiB or more is its own
    mapping and goes back to the kernel when freed, so RSS differences are live memory rather than
    what glibc keeps cached for reuse (which otherwise makes the figures wander by ±4 B/param).
    """
    os.environ["MALLOC_MMAP_THRESHOLD_"] = "65536"
    rows = []
    side = int(round(parameters**0.5))
    shape = (side, parameters // side)
    count = shape[0] * shape[1]
    rng = np.random.default_rng(2)
    weights = rng.standard_normal(shape).astype(np.float32)
    grads = (rng.standard_normal(shape) * 1e-2).astype(np.float32)
    for label, config, needs_loss in MEMORY_CASES:
        rows.append(memory_case(binary, label, config, needs_loss, weights, grads, log))
    plain = next(r for r in rows if r["optimizer"] == "sgd")
    for row in rows:
        # The state alone: the first step's growth minus that of plain SGD (no state) in the same run.
        row["state_bytes_per_param"] = row["first_step_bytes_per_param"] - plain["first_step_bytes_per_param"]
    log(
        "state bytes per parameter (first step's RSS growth minus plain SGD's): "
        + ", ".join(f"{r['optimizer']} {r['state_bytes_per_param']:.2f}" for r in rows)
    )
    # Adafactor's factored state is O(rows + columns): its bytes per parameter must fall as matrices grow.
    scaling = []
    for side in (1024, 2048, 4096, 8192):
        weights = rng.standard_normal((side, side)).astype(np.float32)
        grads = (rng.standard_normal((side, side)) * 1e-2).astype(np.float32)
        measured = {}
        for label, config in (
            ("sgd", {"optimizer": "sgd"}),
            ("adafactor", {"optimizer": "adafactor"}),
            ("adam", {"optimizer": "adam"}),
        ):
            measured[label] = memory_case(
                binary, f"{label} {side}x{side}", config, False, weights, grads, log
            )
        for label in ("adafactor", "adam"):
            row = measured[label]
            row["state_bytes_per_param"] = (
                row["first_step_bytes_per_param"] - measured["sgd"]["first_step_bytes_per_param"]
            )
            scaling.append(row)
        # What the state holds by construction: Adafactor a row and a column vector, Adam m and v.
        measured["adafactor"]["expected_state_bytes_per_param"] = 4 * (side + side) / (side * side)
        measured["adam"]["expected_state_bytes_per_param"] = 8.0
        log(
            f"  {side}x{side}: state bytes/param adafactor {measured['adafactor']['state_bytes_per_param']:.3f}"
            f" (by construction {4 * 2 * side / side**2:.4f}), adam {measured['adam']['state_bytes_per_param']:.3f} (8)"
        )
    return {"rows": rows, "adafactor_scaling": scaling, "shape": list(shape), "parameters": count}


def settle() -> None:
    """Lets the daemon release a request's buffers, which happens just after the response is sent."""
    time.sleep(0.3)


def memory_case(
    binary: Path,
    label: str,
    config: Dict[str, Any],
    needs_loss: bool,
    weights: np.ndarray,
    grads: np.ndarray,
    log: Callable[[str], None],
) -> Dict[str, Any]:
    count = weights.size
    terms = config.get("hyperparameters", {}).get("terms", 1)
    with daemon(binary, "--compute-threads", "2") as running:
        assert running.process is not None
        pid = running.process.pid
        session, token = create_session(running.port, config)
        connection = Connection(running.port, token)
        path = f"/v1/sessions/{session}"
        time.sleep(0.2)
        idle = rss_bytes(pid)
        checked(connection.request("PUT", path + "/parameters", save({"w": weights})), "PUT")
        settle()
        with_params = rss_bytes(pid)
        names = [f"{k}/w" for k in range(terms)] if config["optimizer"] == "mtadam" else ["w"]
        metadata = {"loss": "1.0"} if needs_loss else None
        body = save({name: grads for name in names}, metadata=metadata)
        # The first step allocates the state; the second shows the steady-state peak.
        checked(connection.request("POST", path + "/step?return=none", body), "step 1")
        settle()
        after_first = rss_bytes(pid)
        has_peak = reset_peak(pid)
        checked(connection.request("POST", path + "/step?return=params", body), "step 2")
        peak = rss_bytes(pid, "VmHWM") if has_peak else float("nan")
        connection.close()
    row = {
        "optimizer": label,
        "parameters": count,
        "parameter_bytes_per_param": (with_params - idle) / count,
        # RSS growth over the first step: the state it allocates, plus request/response buffers the
        # allocator keeps for reuse (the plain-SGD row, which has no state, shows that part).
        "first_step_bytes_per_param": (after_first - with_params) / count,
        "request_bytes": len(body),
        "payload_bytes": len(body) + 4 * count,  # the request and a return=params response
        "resident_before_step": after_first - idle,
        "peak_during_step": peak - idle,
    }
    # The peak of a steady-state step over what it must hold: parameters + state + payload.
    row["peak_ratio"] = row["peak_during_step"] / (row["resident_before_step"] + row["payload_bytes"])
    log(
        f"{label:<22} {count:>10,} params  parameters {row['parameter_bytes_per_param']:5.2f} B/param"
        f"  first step +{row['first_step_bytes_per_param']:6.2f} B/param"
        f"  | step peak {row['peak_during_step'] / 2**20:8.1f} MiB = {row['peak_ratio']:4.2f}x (resident {row['resident_before_step'] / 2**20:.1f} MiB + payload {row['payload_bytes'] / 2**20:.1f} MiB)"
    )
    return row


# MARK: - Main


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", choices=["e2e", "concurrency", "memory", "all"])
    parser.add_argument("--binary", type=Path, default=Path(os.environ.get("OPTIMIZERD_BIN", DEFAULT_BINARY)))
    parser.add_argument("--sizes", default="1M,10M", help="end to end: parameter counts")
    parser.add_argument("--repeats", type=int, default=7, help="end to end: timed steps per variant")
    parser.add_argument("--clients", default="1,8,64", help="concurrency: client counts")
    parser.add_argument("--seconds", type=float, default=5, help="concurrency: seconds per configuration")
    parser.add_argument("--parameters", default="4M", help="memory: parameters of the matrix")
    parser.add_argument(
        "--data-root",
        type=Path,
        help="put the daemons' data directories here (e.g. /dev/shm to take the disk out)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    args = parser.parse_args()
    loopback.DATA_ROOT = args.data_root
    if not args.binary.exists():
        sys.exit(
            f"{args.binary} not found: build it with `swift build -c release --product optimizerd` (or pass --binary)"
        )

    def log(line: str) -> None:
        print(line, flush=True)

    results: Dict[str, Any] = {"data_root": str(args.data_root or tempfile.gettempdir())}
    if args.part in ("e2e", "all"):
        log(
            "== end to end: one Adam step over loopback (return=params) vs PUT+GET of the same bytes, medians =="
        )
        results["e2e"] = end_to_end(
            args.binary, [parse_count(s) for s in args.sizes.split(",")], args.repeats, log
        )
    if args.part in ("concurrency", "all"):
        log("== concurrency: N clients, one Adam session each, stepping back to back (return=params) ==")
        results["concurrency"] = concurrency(
            args.binary, [int(c) for c in args.clients.split(",")], args.seconds, log
        )
    if args.part in ("memory", "all"):
        log("== memory: resident bytes per parameter (VmRSS deltas) and the peak during a step (VmHWM) ==")
        results["memory"] = memory(args.binary, parse_count(args.parameters), log)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
