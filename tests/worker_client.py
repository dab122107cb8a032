"""A worker process for tests: leases batch tasks through the generated stubs, heartbeats,
and completes or fails each by its command line ("exit N", "fail", anything else: exit 0).

`hold` mode leases one item, prints it and heartbeats until killed; `run` mode works
until no work came for `--idle` seconds, printing one JSON line per item it ended.
Every loop is bounded in count and time."""

from __future__ import annotations

import argparse
import json
import sys
import time

import grpc
from google.protobuf import duration_pb2

from jobcontrol.v1 import worker_service_pb2 as pb
from jobcontrol.v1 import worker_service_pb2_grpc

MAX_ROUNDS = 10_000


def _lease(stub: worker_service_pb2_grpc.WorkerServiceStub, who: str, n: int) -> list[pb.WorkItem]:
    reply = stub.LeaseWork(
        pb.LeaseWorkRequest(
            worker_id=who,
            kinds=["batch.task"],
            max_items=n,
            lease_duration=duration_pb2.Duration(seconds=1),
            wait_timeout=duration_pb2.Duration(nanos=300_000_000),
        ),
        timeout=10,
    )
    return list(reply.items)


def _end(stub: worker_service_pb2_grpc.WorkerServiceStub, item: pb.WorkItem) -> dict[str, object]:
    command = item.payload["command_line"]
    beat = stub.Heartbeat(pb.HeartbeatRequest(lease_token=item.lease_token, progress="started"))
    out: dict[str, object] = {"target": item.target, "attempt": item.attempt,
                              "cancel": beat.cancel_requested}  # fmt: skip
    if command == "fail":
        reply = stub.FailWork(pb.FailWorkRequest(lease_token=item.lease_token, error="boom"))
        out["will_retry"] = reply.will_retry
    else:
        code = int(command.split()[1]) if command.startswith("exit ") else 0
        done = stub.CompleteWork(pb.CompleteWorkRequest(lease_token=item.lease_token,
                                                        exit_code=code))  # fmt: skip
        out.update(exit_code=code, done=done.done)
    return out


def hold(stub: worker_service_pb2_grpc.WorkerServiceStub, who: str, limit: float) -> None:
    """Lease one item, print it, heartbeat until killed (or `limit` seconds pass)."""
    deadline = time.monotonic() + limit
    items: list[pb.WorkItem] = []
    for _ in range(MAX_ROUNDS):
        items = _lease(stub, who, 1)
        if items or time.monotonic() > deadline:
            break
    if not items:
        sys.exit(2)
    item = items[0]
    record = {"target": item.target, "attempt": item.attempt, "token": item.lease_token}
    print(json.dumps(record), flush=True)
    while time.monotonic() < deadline:
        stub.Heartbeat(pb.HeartbeatRequest(lease_token=item.lease_token), timeout=10)
        time.sleep(0.2)


def run(stub: worker_service_pb2_grpc.WorkerServiceStub, who: str, idle: float,
        limit: float) -> None:  # fmt: skip
    """Work until nothing came for `idle` seconds (or `limit` seconds pass)."""
    deadline = time.monotonic() + limit
    last = time.monotonic()
    for _ in range(MAX_ROUNDS):
        now = time.monotonic()
        if now > deadline or now - last > idle:
            return
        items = _lease(stub, who, 4)
        if items:
            last = time.monotonic()
        for item in items:
            print(json.dumps(_end(stub, item)), flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("target")
    parser.add_argument("mode", choices=("hold", "run"))
    parser.add_argument("--worker-id", default="worker")
    parser.add_argument("--idle", type=float, default=3.0)
    parser.add_argument("--limit", type=float, default=60.0)
    args = parser.parse_args()
    with grpc.insecure_channel(args.target) as channel:
        stub = worker_service_pb2_grpc.WorkerServiceStub(channel)
        if args.mode == "hold":
            hold(stub, args.worker_id, args.limit)
        else:
            run(stub, args.worker_id, args.idle, args.limit)


if __name__ == "__main__":
    main()
