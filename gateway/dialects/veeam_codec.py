"""Veeam Enterprise Manager codec: pure conversions between jobcontrol and EM's XML/JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import grpc
from google.longrunning import operations_pb2

from jobcontrol.gateway.dialects.veeam_sessions import Session, TaskRecord
from jobcontrol.gateway.dialects.veeam_tree import Many, Node, links
from jobcontrol.v1 import resources_pb2 as r

B = r.BackupSpec
JOB_TYPES = {B.BACKUP: "Backup", B.REPLICA: "Replica", B.BACKUP_COPY: "BackupCopy",
             B.NAS: "NasBackup", B.AGENT: "AgentBackup"}  # fmt: skip
# Enterprise Manager's own spellings (its `Platform` values, e.g. Hyperv, not HyperV)
PLATFORMS = {B.VMWARE: "VMware", B.VCLOUD: "vCloud", B.HYPERV: "Hyperv", B.WINDOWS: "Windows",
             B.LINUX: "Linux", B.FILE_SHARE: "FileShare"}  # fmt: skip
# a list holds at most this many jobs (one ListJobs page; EM has no paging of its own)
MAX_LISTED_JOBS = 1000
# the unresolved deletion tasks one GET /api/tasks asks the server about (the newest)
MAX_ASKED_OPERATIONS = 64

# --- job families and actions -----------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """Generic, NAS or agent jobs: where they live, their job types and their names."""

    path: str
    types: tuple[B.JobType.ValueType, ...]
    # the entity type, also the URN kind; the reference type
    entity: str
    reference: str
    # NAS jobs take their action as a path segment, the others as ?action=
    action_in_path: bool = False

    @property
    def type_names(self) -> list[str]:
        """The job types by enum name (as the core's `type` field and preconditions say)."""
        return [B.JobType.Name(t) for t in self.types]

    def href(self, base: str, job_id: str) -> str:
        return f"{base}/api/{self.path}/{job_id}"

    def action_href(self, base: str, job_id: str, action: str) -> str:
        href = self.href(base, job_id)
        return f"{href}/{action}" if self.action_in_path else f"{href}?action={action}"


GENERIC = Kind("jobs", (B.BACKUP, B.REPLICA, B.BACKUP_COPY), "Job", "JobReference")
NAS = Kind("nas/jobs", (B.NAS,), "NasJob", "NasJobReference", action_in_path=True)
AGENT = Kind("agents/jobs", (B.AGENT,), "AgentBackupJob", "AgentBackupJobReference")
KINDS = (GENERIC, NAS, AGENT)


@dataclass(frozen=True)
class Action:
    """A job action: its spelling in URLs, its RPC, the Task's Operation and message, and
    the Rel of its link."""

    spelling: str
    rpc: str
    operation: str
    message: str
    rel: str


ACTIONS = (
    Action("start", "StartJob", "StartJob", "The job has been started.", "Start"),
    Action("stop", "StopJob", "StopJob", "The job has been stopped.", "Stop"),
    Action("retry", "RetryJob", "RetryJob", "The job has been retried.", "Retry"),
    # the message says which way the schedule went (toggle_message)
    Action("toggleScheduleEnabled", "ToggleJob", "ToggleScheduleEnabled", "",
           "ToggleScheduleEnabled"),
)  # fmt: skip


def toggle_message(job: r.Job) -> str:
    """The Task message of a schedule toggle, from the job as the toggle left it."""
    return f"The schedule has been {'enabled' if job.backup.schedule_enabled else 'disabled'}."


# --- what comes in ----------------------------------------------------------------------


def decode_accept(accept: str) -> bool:
    """Whether the response is JSON: only when Accept prefers application/json over XML."""
    best = {"json": -1.0, "xml": -1.0}
    for part in accept.split(","):
        media, *params = (p.strip() for p in part.split(";"))
        kind = {"application/json": "json", "application/xml": "xml"}.get(media.lower())
        if kind is None:
            continue
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        best[kind] = max(best[kind], quality)
    return best["json"] > 0 and best["json"] >= best["xml"]


def decode_format(query: Mapping[str, str]) -> bool | None:
    """`?format=`: True for Entity, False for Ref (the default), in any case; None for
    anything else."""
    value = query.get("format", "Ref").lower()
    return {"entity": True, "ref": False}.get(value)


DELETED = (True, "The job has been deleted.")
CANCELLED = (False, "The deletion has been cancelled.")
# a deletion whose Operation the server no longer knows (deleted through the native API)
UNTRACKED = (False, "The deletion can no longer be tracked: its operation is gone.")


def decode_operation_result(op: operations_pb2.Operation) -> tuple[bool, str] | None:
    """A deletion Task's (Success, Message) from its Operation; None while it runs."""
    if not op.done:
        return None
    if not op.HasField("error"):
        return DELETED
    if op.error.code == grpc.StatusCode.CANCELLED.value[0]:  # DELETE /api/tasks/{id}
        return CANCELLED
    return False, op.error.message or "The deletion did not finish."


# --- what goes to the server ------------------------------------------------------------


def type_filter(kind: Kind) -> r.Filter:
    """The structured filter `type = T1 OR type = T2 ...` of a family's job types."""
    comparisons = [
        r.Filter(comparison=r.Comparison(field="type", operator=r.Comparison.EQUAL, text=name))
        for name in kind.type_names
    ]
    if len(comparisons) == 1:
        return comparisons[0]
    return r.Filter(any=r.FilterList(filters=comparisons))


def encode_string(value: str) -> str:
    """A filter string literal: double quotes, with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def encode_operations_filter(names: Iterable[str]) -> str:
    """The AIP-160 filter `name = "…" OR name = "…"` (ListOperations takes no structured
    filter, so every name goes through the escaping encoder)."""
    return " OR ".join(f"name = {encode_string(name)}" for name in names)


# --- what goes out ----------------------------------------------------------------------


def _job_id(job: r.Job) -> str:
    return job.name.rsplit("/", 1)[-1]


def encode_reference(kind: Kind, job: r.Job, base: str, tag: str = "Ref") -> Node:
    """A job's reference: `Ref` in lists, `EntityRef` alone; a link to its entity."""
    job_id = _job_id(job)
    name = job.display_name or job_id
    href = kind.href(base, job_id)
    node = Node(tag, {"UID": f"urn:veeam:{kind.entity}:{job_id}", "Name": name,
                      "Href": href, "Type": kind.reference})  # fmt: skip
    alternate = {"Href": f"{href}?format=Entity", "Name": name, "Type": kind.entity,
                 "Rel": "Alternate"}  # fmt: skip
    node.children.append(links(alternate))
    return node


def encode_job(kind: Kind, job: r.Job, base: str) -> Node:
    """A job's entity (`Job`, `NasJob`, `AgentBackupJob`); seed 004: no Delete link."""
    job_id = _job_id(job)
    name = job.display_name or job_id
    href = kind.href(base, job_id)
    uid = f"urn:veeam:{kind.entity}:{job_id}"
    node = Node(kind.entity, {"Href": f"{href}?format=Entity", "Type": kind.entity,
                              "Name": name, "UID": uid})  # fmt: skip
    rows = [{"Href": href, "Name": name, "Type": kind.reference, "Rel": "Alternate"}]
    for action in ACTIONS:
        href_of = kind.action_href(base, job_id, action.spelling)
        rows.append({"Href": href_of, "Type": "Task", "Rel": action.rel})
    node.children.append(links(*rows))
    spec = job.backup
    node.add("JobType", JOB_TYPES.get(spec.job_type, ""))
    node.add("Platform", PLATFORMS.get(spec.platform, ""))
    node.add("Description", spec.description)
    node.add("ScheduleConfigured", spec.HasField("schedule_enabled"))
    node.add("ScheduleEnabled", spec.schedule_enabled)
    return node


def encode_jobs(kind: Kind, jobs: Iterable[r.Job], base: str, entity: bool) -> Node:
    """A list of jobs: `EntityReferences` of `Ref`s, or the entities (`Jobs`, …)."""
    if entity:
        items = [encode_job(kind, job, base) for job in jobs]
        return Node(kind.entity + "s", {}, [Many(kind.entity, items)])
    refs = [encode_reference(kind, job, base) for job in jobs]
    return Node("EntityReferences", {}, [Many("Ref", refs)])


def encode_task(task: TaskRecord, base: str) -> Node:
    """A Task: Running, or Finished with its Result; a Delete link to itself."""
    href = f"{base}/api/tasks/{task.task_id}"
    node = Node("Task", {"Href": href, "Type": "Task"})
    node.children.append(links({"Href": href, "Type": "Task", "Rel": "Delete"}))
    node.add("TaskId", task.task_id)
    node.add("State", "Running" if task.result is None else "Finished")
    node.add("Operation", task.operation)
    if task.result is not None:
        success, message = task.result
        node.children.append(Node("Result", {"Success": success}).add("Message", message))
    return node


def encode_tasks(tasks: Iterable[TaskRecord], base: str) -> Node:
    """`TaskList` (JSON `{"Tasks": [...]}`)."""
    return Node("TaskList", {}, [Many("Task", [encode_task(t, base) for t in tasks])])


def encode_logon_session(session: Session, base: str) -> Node:
    """A `LogonSession`: its links, user name and id (the id is the session's token)."""
    href = f"{base}/api/logonSessions/{session.id}"
    node = Node("LogonSession", {"Href": href, "Type": "LogonSession"})
    node.children.append(
        links(
            {"Href": href, "Type": "LogonSession", "Rel": "Delete"},
            {"Href": f"{base}/api/jobs", "Type": "JobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/nas/jobs", "Type": "NasJobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/agents/jobs", "Type": "AgentJobReferenceList", "Rel": "Down"},
            {"Href": f"{base}/api/tasks", "Type": "TaskList", "Rel": "Down"},
        )
    )
    return node.add("UserName", session.user.name).add("SessionId", session.id)


def encode_logon_sessions(sessions: Iterable[Session], base: str) -> Node:
    """`LogonSessions` (JSON `{"LogonSessions": [...]}`)."""
    items = [encode_logon_session(s, base) for s in sessions]
    return Node("LogonSessions", {}, [Many("LogonSession", items)])


def encode_entry_point(base: str, versions: Iterable[str]) -> Node:
    """`EnterpriseManager`: the logon link (`latest`) and one per supported version."""

    def logon(version: str) -> Many:
        href = f"{base}/api/sessionMngr/?v={version}"
        return links({"Href": href, "Type": "LogonSession", "Rel": "Create"})

    supported = [Node("SupportedVersion", {"Name": v}, [logon(v)]) for v in versions]
    node = Node("EnterpriseManager", {}, [logon("latest")])
    node.children.append(Many("SupportedVersion", supported, wrapper="SupportedVersions"))
    return node


def encode_error(status: int, message: str) -> Node:
    """`<Error StatusCode= Message=/>` (JSON `{"StatusCode": n, "Message": "…"}`)."""
    return Node("Error", {"StatusCode": status, "Message": message})
