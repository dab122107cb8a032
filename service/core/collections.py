"""Use-cases on collections: create, read, list, update (and upsert); deletion lives in
deletions.py."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from jobcontrol.service.core import access, engine, filters, names, pages
from jobcontrol.service.core.authorizer import Authorizer
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.engine import Preconditions
from jobcontrol.service.core.errors import DomainError, Reason, bad_field
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


def check_collection(collection: Collection, field: str = "collection") -> None:
    """Names, labels and quotas a collection may hold."""
    check_document(
        {"display_name": collection.display_name, "labels": collection.labels}, "", field
    )
    for limit in ("max_job_count", "max_active_jobs", "max_recurrence_interval"):
        value = getattr(collection.quota, limit)
        if value is not None and value < 0:
            raise bad_field(f"{field}.quota.{limit}", "must not be negative")


async def insert_collection(
    tx: Tx, collection_id: str, collection: Collection, owner: str
) -> Collection:
    """Store a new collection (its fields already checked), owned by `owner`;
    COLLECTION_ALREADY_EXISTS if the id is taken. Also how CreateJob creates its parent
    from a template."""
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
    collection.create_time, collection.version, collection.owner = now, 0, owner
    _stamp(collection, now)
    await tx.insert_collection(collection)
    return collection


def _update_paths(paths: list[str]) -> tuple[str, ...]:
    """The updatable fields a mask names (`*`: all of them)."""
    for path in paths:
        if path == "profile":
            raise bad_field("update_mask.profile", "is fixed at creation", Reason.FIELD_IMMUTABLE)
        if path != "*" and path.split(".")[0] not in UPDATABLE:
            raise bad_field(
                f"update_mask.{path}", "not an updatable field", Reason.INVALID_UPDATE_MASK
            )
    return UPDATABLE if "*" in paths else tuple(dict.fromkeys(p.split(".")[0] for p in paths))


class Collections:
    """Collection use-cases."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    async def create(
        self, collection_id: str, collection: Collection, request_id: str = ""
    ) -> Collection:
        """CreateCollection; the profile is required and fixed."""
        names.check_id(collection_id, "collection_id")
        check_collection(collection)

        owner = self.ctx.owner()

        async def run(tx: Tx) -> Collection:
            return await insert_collection(tx, collection_id, collection, owner)

        return await self.ctx.write("CreateCollection", request_id, run)

    async def get(self, name: str) -> Collection:
        """GetCollection."""
        collection_id = names.collection_name(name)
        return await self.ctx.store.read(lambda tx: load_collection(tx, collection_id))

    async def list_page(
        self,
        page_size: int,
        page_token: str,
        filter_text: str = "",
        structured: filters.Node | None = None,
    ) -> CollectionPage:
        """ListCollections in id order: only the collections the caller may see (a page may
        hold fewer than `page_size` and still be followed by another, AIP-158)."""
        size = pages.page_size(page_size)
        tree = filters.both(filters.parse(filter_text, filters.COLLECTION_FIELDS), structured)
        fingerprint = ("collections", repr(tree))
        after = pages.decode(fingerprint, page_token)
        start = after[0] if after else None
        rows = await self.ctx.store.read(lambda tx: tx.list_collections(start, size + 1, tree))
        found, token = pages.cut(rows, size, fingerprint, lambda c: [c.collection_id])
        principal, authorizer = access.call().principal, Authorizer(self.ctx)
        return CollectionPage([c for c in found if authorizer.sees(principal, c)], token)

    async def update(
        self,
        name: str,
        patch: dict[str, Any],
        paths: list[str],
        pre: Preconditions,
        request_id: str = "",
        create_as: Collection | None = None,
    ) -> Collection:
        """UpdateCollection: display name, plan, quota and labels; the profile is fixed.
        With `create_as` (allow_missing), a missing collection is created from it."""
        collection_id = names.collection_name(name, "collection.name")
        chosen = _update_paths(paths)
        if create_as is not None:
            check_collection(create_as)
        owner = self.ctx.owner()

        async def run(tx: Tx) -> Collection:
            collection = await tx.get_collection(collection_id)
            if collection is None and create_as is not None:
                engine.check_conditions(None, pre, name)
                return await insert_collection(tx, collection_id, create_as, owner)
            if collection is None:
                collection = await load_collection(tx, collection_id)
            engine.check_conditions(collection, pre)
            if create_as is not None and create_as.profile is not collection.profile:
                raise bad_field(
                    "collection.profile", "is fixed at creation", Reason.FIELD_IMMUTABLE
                )
            for field in chosen:
                default: Any = Quota() if field == "quota" else ({} if field == "labels" else "")
                setattr(collection, field, patch.get(field, default))
            check_collection(collection)
            _stamp(collection, now_us())
            await tx.update_collection(collection)
            return collection

        return await self.ctx.write("UpdateCollection", request_id, run)


async def load_collection(tx: Tx, collection_id: str) -> Collection:
    """The collection, or COLLECTION_NOT_FOUND."""
    collection = await tx.get_collection(collection_id)
    if collection is None:
        name = f"collections/{collection_id}"
        raise DomainError(
            Reason.COLLECTION_NOT_FOUND, f"{name} not found", {"collection": name}, resource=name
        )
    return collection
