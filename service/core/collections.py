"""Use-cases on collections: create, read, list, update; deletion lives in bulk.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from jobcontrol.service.core import engine, names, pages
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
from jobcontrol.service.core.jobs import load_collection
from jobcontrol.service.core.model import Collection, Quota, now_us
from jobcontrol.service.core.ports import Tx
from jobcontrol.service.core.validation import check_document

UPDATABLE = ("display_name", "plan", "quota", "labels")


@dataclass
class CollectionPage:
    collections: list[Collection]
    next_page_token: str


def _stamp(collection: Collection, now: int) -> None:
    collection.version += 1
    collection.etag = engine.new_etag(collection.uid, collection.version)
    collection.update_time = now


def _check_quota(quota: Quota) -> None:
    for field in ("max_job_count", "max_active_jobs", "max_recurrence_interval"):
        value = getattr(quota, field)
        if value is not None and value < 0:
            raise bad_field(f"collection.quota.{field}", "must not be negative")


class Collections:
    """Collection use-cases."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self, collection_id: str, collection: Collection, request_id: str = ""
    ) -> Collection:
        """CreateCollection; the profile is required and fixed."""
        names.check_id(collection_id, "collection_id")
        check_document(
            {"display_name": collection.display_name, "labels": collection.labels}, "", "collection"
        )
        _check_quota(collection.quota)

        async def run(tx: Tx) -> Collection:
            if await tx.get_collection(collection_id) is not None:
                name = f"collections/{collection_id}"
                raise DomainError(
                    Reason.COLLECTION_ALREADY_EXISTS,
                    f"{name} already exists",
                    {"collection": name},
                    resource=name,
                )
            now = now_us()
            collection.collection_id, collection.uid = collection_id, uuid.uuid4().hex
            collection.create_time = now
            _stamp(collection, now)
            await tx.insert_collection(collection)
            return collection

        return await self.ctx.write("CreateCollection", request_id, run)

    async def get(self, name: str) -> Collection:
        """GetCollection."""
        collection_id = names.collection_name(name)
        return await self.ctx.store.read(lambda tx: load_collection(tx, collection_id))

    async def list_page(self, page_size: int, page_token: str) -> CollectionPage:
        """ListCollections in id order."""
        size = pages.page_size(page_size)
        fingerprint = ("collections",)
        after = pages.decode(fingerprint, page_token)
        rows = await self.ctx.store.read(
            lambda tx: tx.list_collections(after[0] if after else None, size + 1)
        )
        token = ""
        if len(rows) > size:
            rows = rows[:size]
            token = pages.encode(fingerprint, [rows[-1].collection_id])
        return CollectionPage(rows, token)

    async def update(
        self, name: str, patch: dict[str, Any], paths: list[str], etag: str, request_id: str = ""
    ) -> Collection:
        """UpdateCollection: display name, plan, quota and labels; the profile is fixed."""
        collection_id = names.collection_name(name, "collection.name")
        for path in paths:
            if path == "profile":
                raise bad_field(
                    "update_mask.profile", "is fixed at creation", Reason.FIELD_IMMUTABLE
                )
            if path != "*" and path.split(".")[0] not in UPDATABLE:
                raise bad_field(
                    f"update_mask.{path}", "not an updatable field", Reason.INVALID_UPDATE_MASK
                )
        chosen = UPDATABLE if "*" in paths else tuple({p.split(".")[0] for p in paths})

        async def run(tx: Tx) -> Collection:
            collection = await load_collection(tx, collection_id)
            if etag and etag != collection.etag:
                raise DomainError(
                    Reason.ETAG_MISMATCH,
                    f"etag does not match {name}",
                    {"collection": name},
                    resource=name,
                )
            for field in chosen:
                default: Any = Quota() if field == "quota" else ({} if field == "labels" else "")
                setattr(collection, field, patch.get(field, default))
            check_document(
                {"display_name": collection.display_name, "labels": collection.labels},
                "",
                "collection",
            )
            _check_quota(collection.quota)
            _stamp(collection, now_us())
            await tx.update_collection(collection)
            return collection

        return await self.ctx.write("UpdateCollection", request_id, run)
