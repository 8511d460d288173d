"""Test helper: files of several patients dropped in a known order, and what the sandbox's
records say about it (first acceptance per file, SENDs in flight at once)."""

from __future__ import annotations

from collections import defaultdict

from pipeline_env import message


def patient_message(patient: str, seq: int) -> bytes:
    """A message of ``patient`` whose sandbox marker is ``<patient>-<seq>``."""
    return message(f"{patient}-{seq}", Patient={"Identifiers": [{"ID": patient, "IDType": "MR"}]})


def drop_patients(put, patients: int, files: int) -> dict[str, list[str]]:
    """Drop ``files`` files for each of ``patients`` patients, round by round (p00's first, p01's
    first, ..., p00's second, ...), each ``put(name, data, k)`` with k its place in drop order.
    Names sort in drop order too (S3 breaks LastModified ties by key). Returns patient → its
    markers in drop order."""
    expected: dict[str, list[str]] = defaultdict(list)
    k = 0
    for seq in range(files):
        for p in range(patients):
            patient = f"p{p:02}"
            put(f"f{seq:02}-{patient}.json", patient_message(patient, seq), k)
            expected[patient].append(f"{patient}-{seq}")
            k += 1
    return dict(expected)


def local_put(env, spacing: float = 0.01):
    """Drop into a PipelineEnv's inbox with mtimes ``spacing`` apart, oldest first."""
    def put(name: str, data: bytes, k: int) -> None:
        env.drop(name, data, age=1000 - k * spacing)
    return put


def ran(env, *args) -> None:
    """Run the command to completion; exit 0 expected (else: what failed, and the log's end)."""
    result = env.run(*args, timeout=300)
    failed = {n: env.sidecar("failed", n).get("errors") for n in env.files("failed")}
    assert result.returncode == 0, (result.returncode, failed, result.stderr[-3000:])


def check_order(records: dict, expected: dict[str, list[str]]) -> None:
    """Each patient's files were first accepted in drop order, and none was sent before the
    one before it had been accepted (one at a time)."""
    first_ok: dict[str, float] = {}
    starts: dict[str, list[float]] = defaultdict(list)
    for send in records["sends"]:
        starts[send["marker"]].append(send["received_at"])
        if send["status"] == 200:
            first_ok.setdefault(send["marker"], send["at"])
    for patient, markers in expected.items():
        missing = [m for m in markers if m not in first_ok]
        assert not missing, f"never accepted: {missing}"
        times = [first_ok[m] for m in markers]
        assert times == sorted(times), (patient, times)
        for earlier, later in zip(markers, markers[1:]):
            assert min(starts[later]) >= first_ok[earlier], (patient, earlier, later)


def max_in_flight(records: dict) -> int:
    """The most SENDs the sandbox had in hand at one moment."""
    edges = sorted([(s["received_at"], 1) for s in records["sends"]] + [(s["at"], -1) for s in records["sends"]])
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most
