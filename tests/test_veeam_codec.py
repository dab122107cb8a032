"""The Veeam Enterprise Manager codec as pure functions (no server): query decoding, the
filters it sends, and every representation in XML (namespaced) and JSON."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import orjson
import pytest
from google.longrunning import operations_pb2
from google.rpc import status_pb2

from jobcontrol.gateway.dialects import veeam_codec as codec
from jobcontrol.gateway.dialects import veeam_tree as tree
from jobcontrol.gateway.dialects.veeam_sessions import Session, TaskRecord, User
from jobcontrol.service.core import filters
from jobcontrol.v1 import resources_pb2 as res

NS = "{http://www.veeam.com/ent/v1.0}"
BASE = "https://em.test:9398"
GUID = "5b89dae5-6f08-45ec-b068-08f0bd08394a"
Backup = res.BackupSpec
CANCELLED = (False, "The deletion has been cancelled.")


def job(job_type: Any = Backup.BACKUP, **spec: Any) -> res.Job:
    """A job as the server returns it."""
    return res.Job(
        name=f"collections/veeam/jobs/{GUID}",
        display_name="Backup Job 1",
        backup=res.BackupSpec(job_type=job_type, **spec),
    )


def xml_of(node: tree.Node) -> ET.Element:
    body, content_type = tree.encode(node, as_json=False)
    assert content_type == "application/xml; charset=utf-8"
    assert body.startswith(b"<?xml version='1.0' encoding='utf-8'?>")
    return ET.fromstring(body)


def json_of(node: tree.Node) -> Any:
    body, content_type = tree.encode(node, as_json=True)
    assert content_type == "application/json; charset=utf-8"
    return orjson.loads(body)


@pytest.mark.parametrize(
    ("accept", "as_json"),
    [
        ("", False),
        ("application/xml", False),
        ("*/*", False),
        ("text/plain", False),
        ("application/json", True),
        ("Application/JSON", True),
        ("application/json;q=0.5, application/xml", False),
        ("application/xml;q=0.5, application/json", True),
        ("application/json;q=0", False),
        ("application/json;q=bogus", False),
        ("application/json, application/xml", True),
    ],
)
def test_json_only_when_accept_prefers_it(accept: str, as_json: bool) -> None:
    """Representation: XML unless Accept prefers application/json (equal quality: JSON)."""
    assert codec.decode_accept(accept) is as_json


@pytest.mark.parametrize(
    ("query", "entity"),
    [({}, False), ({"format": "Entity"}, True), ({"format": "ENTITY"}, True),
     ({"format": "ref"}, False), ({"format": "Full"}, None), ({"format": ""}, None)],
)  # fmt: skip
def test_format_is_entity_or_ref_in_any_case(query: dict[str, str], entity: bool | None) -> None:
    """?format=: Entity or Ref (the default) in any case; anything else None (400)."""
    assert codec.decode_format(query) is entity


def test_hyper_v_is_spelled_hyperv() -> None:
    """Platforms by Enterprise Manager's spelling: Hyperv (as veeam-em's HORT_PLATFORMS),
    vCloud, VMware."""
    assert codec.PLATFORMS == {
        Backup.VMWARE: "VMware",
        Backup.VCLOUD: "vCloud",
        Backup.HYPERV: "Hyperv",
        Backup.WINDOWS: "Windows",
        Backup.LINUX: "Linux",
        Backup.FILE_SHARE: "FileShare",
    }
    assert (
        json_of(codec.encode_job(codec.GENERIC, job(platform=Backup.HYPERV), BASE))["Platform"]
        == "Hyperv"
    )


def test_type_filter_is_data_over_the_families_job_types() -> None:
    """The structured `type` filter of each family (never filter text)."""

    def equal(name: str) -> res.Filter:
        return res.Filter(
            comparison=res.Comparison(field="type", operator=res.Comparison.EQUAL, text=name)
        )

    generic = [equal("BACKUP"), equal("REPLICA"), equal("BACKUP_COPY")]
    assert codec.type_filter(codec.GENERIC) == res.Filter(any=res.FilterList(filters=generic))
    assert codec.type_filter(codec.NAS) == equal("NAS")
    assert codec.type_filter(codec.AGENT) == equal("AGENT")
    assert codec.GENERIC.type_names == ["BACKUP", "REPLICA", "BACKUP_COPY"]


@pytest.mark.parametrize(
    ("names", "text"),
    [
        (["operations/a"], 'name = "operations/a"'),
        (["operations/a", "operations/b"], 'name = "operations/a" OR name = "operations/b"'),
        (['operations/"q"'], 'name = "operations/\\"q\\""'),
        (["operations/back\\slash"], 'name = "operations/back\\\\slash"'),
        (['operations/\\"'], 'name = "operations/\\\\\\""'),
        ([], ""),
    ],
)
def test_operations_filter_escapes_quotes_and_backslashes(names: list[str], text: str) -> None:
    """The ListOperations filter names each Operation in a quoted literal with `\\` and `"`
    escaped, so a name is data, never filter syntax."""
    assert codec.encode_operations_filter(names) == text


def test_operations_filter_reads_back_as_the_same_names() -> None:
    """What the core's AIP-160 parser reads from the encoded filter is exactly the names
    (an OR of `name =` comparisons), quotes and backslashes included."""
    names = ['operations/a"b', "operations/c\\d", 'operations/"\\" OR name = "x']
    tree = filters.parse(codec.encode_operations_filter(names), filters.OPERATION_FIELDS)
    assert tree == filters.Or(tuple(filters.Cmp("name", "=", n) for n in names))


def operation(done: bool, code: int | None = None, message: str = "") -> Any:
    op = operations_pb2.Operation(name="operations/x", done=done)
    if code is not None:
        op.error.CopyFrom(status_pb2.Status(code=code, message=message))
    return op


@pytest.mark.parametrize(
    ("op", "result"),
    [
        (operation(False), None),
        (operation(True), (True, "The job has been deleted.")),
        (operation(True, 1, "the deletion was cancelled"), CANCELLED),
        (operation(True, 13, "storage failed"), (False, "storage failed")),
        (operation(True, 13), (False, "The deletion did not finish.")),
    ],
    ids=["running", "deleted", "cancelled", "failed", "failed-silently"],
)  # fmt: skip
def test_deletion_task_result_follows_its_operation(op: Any, result: Any) -> None:
    """A deletion Task: Running while its Operation is not done; then Success and Message
    from the Operation (cancelled: not successful, "cancelled")."""
    assert codec.decode_operation_result(op) == result


def test_reference_in_lists_is_ref_and_alone_is_entity_ref() -> None:
    """A job reference: Ref in lists, EntityRef alone; the same attributes and Links."""
    href = f"{BASE}/api/jobs/{GUID}"
    want = {
        "UID": f"urn:veeam:Job:{GUID}",
        "Name": "Backup Job 1",
        "Href": href,
        "Type": "JobReference",
        "Links": [{"Href": f"{href}?format=Entity", "Name": "Backup Job 1", "Type": "Job",
                   "Rel": "Alternate"}],
    }  # fmt: skip
    alone = codec.encode_reference(codec.GENERIC, job(), BASE, tag="EntityRef")
    assert json_of(alone) == want
    root = xml_of(alone)
    assert (root.tag, root.attrib) == (
        f"{NS}EntityRef",
        {k: want[k] for k in ("UID", "Name", "Href", "Type")},
    )
    assert [(e.tag, e.attrib) for e in root.iter()][1:] == [
        (f"{NS}Links", {}),
        (f"{NS}Link", want["Links"][0]),
    ]
    listed = codec.encode_jobs(codec.GENERIC, [job()], BASE, entity=False)
    assert json_of(listed) == {"Refs": [want]}
    root = xml_of(listed)
    assert (root.tag, [child.tag for child in root]) == (f"{NS}EntityReferences", [f"{NS}Ref"])


def test_nas_entity_links_actions_as_path_segments_and_has_no_delete_link() -> None:
    """A NasJob entity: UID urn:veeam:NasJob:, action links /start …, JobType NasBackup,
    no Delete link (seed 004); booleans are true/false in XML, JSON booleans."""
    nas = job(Backup.NAS, platform=Backup.FILE_SHARE, schedule_enabled=False, description="d")
    href = f"{BASE}/api/nas/jobs/{GUID}"
    node = codec.encode_job(codec.NAS, nas, BASE)
    actions = [("start", "Start"), ("stop", "Stop"), ("retry", "Retry"),
               ("toggleScheduleEnabled", "ToggleScheduleEnabled")]  # fmt: skip
    assert json_of(node) == {
        "Href": f"{href}?format=Entity",
        "Type": "NasJob",
        "Name": "Backup Job 1",
        "UID": f"urn:veeam:NasJob:{GUID}",
        "Links": [{"Href": href, "Name": "Backup Job 1", "Type": "NasJobReference",
                   "Rel": "Alternate"}]
        + [{"Href": f"{href}/{a}", "Type": "Task", "Rel": rel} for a, rel in actions],
        "JobType": "NasBackup",
        "Platform": "FileShare",
        "Description": "d",
        "ScheduleConfigured": True,
        "ScheduleEnabled": False,
    }  # fmt: skip
    root = xml_of(node)
    texts = {child.tag: child.text for child in root if child.tag != f"{NS}Links"}
    assert texts == {f"{NS}JobType": "NasBackup", f"{NS}Platform": "FileShare",
                     f"{NS}Description": "d", f"{NS}ScheduleConfigured": "true",
                     f"{NS}ScheduleEnabled": "false"}  # fmt: skip


def test_agent_entities_list_as_agent_backup_jobs_with_query_actions() -> None:
    """AgentBackupJobs of AgentBackupJob entities; action links ?action=…; a job without a
    display name is named by its id; no schedule set: ScheduleConfigured false."""
    agent = res.Job(
        name=f"collections/veeam/jobs/{GUID}", backup=res.BackupSpec(job_type=Backup.AGENT)
    )
    body = json_of(codec.encode_jobs(codec.AGENT, [agent], BASE, entity=True))
    (entity,) = body["AgentBackupJobs"]
    assert (entity["Name"], entity["UID"]) == (GUID, f"urn:veeam:AgentBackupJob:{GUID}")
    assert entity["Links"][1]["Href"] == f"{BASE}/api/agents/jobs/{GUID}?action=start"
    assert (entity["ScheduleConfigured"], entity["ScheduleEnabled"]) == (False, False)
    assert (entity["JobType"], entity["Platform"]) == ("AgentBackup", "")


def test_task_running_then_finished_with_result() -> None:
    """A Task: Href, Type, a Delete link to itself, TaskId, State, Operation; Result with
    Success (attribute) and Message once finished."""
    href = f"{BASE}/api/tasks/task-3"
    running = TaskRecord("task-3", "DeleteJob", "operations/x")
    link = {"Href": href, "Type": "Task", "Rel": "Delete"}
    head = {"Href": href, "Type": "Task", "Links": [link], "TaskId": "task-3"}
    assert json_of(codec.encode_task(running, BASE)) == {
        **head,
        "State": "Running",
        "Operation": "DeleteJob",
    }
    finished = TaskRecord("task-3", "DeleteJob", "operations/x", CANCELLED)
    assert json_of(codec.encode_task(finished, BASE)) == {
        **head,
        "State": "Finished",
        "Operation": "DeleteJob",
        "Result": {"Success": False, "Message": "The deletion has been cancelled."},
    }
    result = xml_of(codec.encode_task(finished, BASE)).find(f"{NS}Result")
    assert result is not None
    assert (result.attrib, [(c.tag, c.text) for c in result]) == (
        {"Success": "false"},
        [(f"{NS}Message", "The deletion has been cancelled.")],
    )
    assert json_of(codec.encode_tasks([running], BASE))["Tasks"][0]["State"] == "Running"


def test_logon_sessions_list_holds_the_given_sessions() -> None:
    """LogonSession (links, UserName, SessionId) and LogonSessions of them."""
    session = Session("c2lk", User("admin", "pw"), 0.0)
    one = json_of(codec.encode_logon_session(session, BASE))
    assert (one["UserName"], one["SessionId"], one["Href"]) == (
        "admin", "c2lk", f"{BASE}/api/logonSessions/c2lk"
    )  # fmt: skip
    assert [link["Rel"] for link in one["Links"]] == ["Delete", "Down", "Down", "Down", "Down"]
    listed = codec.encode_logon_sessions([session], BASE)
    assert json_of(listed) == {"LogonSessions": [one]}
    root = xml_of(listed)
    assert (root.tag, [c.tag for c in root]) == (f"{NS}LogonSessions", [f"{NS}LogonSession"])


def test_entry_point_and_error() -> None:
    """EnterpriseManager links and versions; Error has only StatusCode and Message (JSON:
    StatusCode a number), every element in the namespace."""
    entry = json_of(codec.encode_entry_point(BASE, ["v1_7"]))
    assert entry == {
        "Links": [{"Href": f"{BASE}/api/sessionMngr/?v=latest", "Type": "LogonSession",
                   "Rel": "Create"}],
        "SupportedVersions": [{"Name": "v1_7", "Links": [
            {"Href": f"{BASE}/api/sessionMngr/?v=v1_7", "Type": "LogonSession", "Rel": "Create"}
        ]}],
    }  # fmt: skip
    assert json_of(codec.encode_error(404, "Job x not found.")) == {
        "StatusCode": 404,
        "Message": "Job x not found.",
    }
    root = xml_of(codec.encode_error(404, 'a "quoted" <message>'))
    assert (root.tag, root.attrib, list(root)) == (
        f"{NS}Error",
        {"StatusCode": "404", "Message": 'a "quoted" <message>'},
        [],
    )
