"""The one decision of every call: the policy's grants (and a gateway's assertions), then
ownership (the principal that created a collection owns it). Refusals are PERMISSION_DENIED
whether or not the resource exists (AIP-211: permission before existence)."""

from __future__ import annotations

from jobcontrol.service.core import access
from jobcontrol.service.core.access import OWNER_ROLE, ROLES, Principal
from jobcontrol.service.core.context import Context
from jobcontrol.service.core.model import Collection, Operation


class Authorizer:
    """Decides whether a principal may use a permission on a collection (the policy is the
    context's)."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.policy = ctx.policy

    @property
    def open(self) -> bool:
        """No authentication is configured (every anonymous caller is an administrator)."""
        return self.policy.open

    def may_impersonate(self, principal: Principal) -> bool:
        """Whether the principal (a gateway) may assert other principals."""
        return self.open or self.policy.allows(principal, access.IMPERSONATE, None)

    async def check(
        self, principal: Principal, permission: str, collection_id: str | None, resource: str
    ) -> None:
        """Allow, or raise PERMISSION_DENIED. `collection_id` None: a call that addresses no
        collection (lists, which show only what the principal may see; the echo)."""
        if not await self.allows(principal, permission, collection_id):
            raise access.denied(permission, resource)

    async def allows(
        self, principal: Principal, permission: str, collection_id: str | None
    ) -> bool:
        """Whether the principal may use `permission` on the collection."""
        if collection_id is None and permission in access.ANY_PRINCIPAL:
            return True
        if self.policy.allows(principal, permission, collection_id):
            return True
        if collection_id is not None and permission in ROLES[OWNER_ROLE]:
            owner = await self._owner_of(collection_id)
            return bool(owner) and owner == principal.id
        return False

    def sees(self, principal: Principal, collection: Collection) -> bool:
        """Whether a list shows the collection to the principal."""
        return collection.owner == principal.id or self.policy.allows(
            principal, access.COLLECTIONS_GET, collection.collection_id
        )

    async def check_operation(self, principal: Principal, permission: str, op: Operation) -> None:
        """An Operation's name does not say its collection: decided once it is read (still
        PERMISSION_DENIED, never a hint that it exists)."""
        await self.check(principal, permission, op.collection_id, op.name)

    async def _owner_of(self, collection_id: str) -> str:
        found = await self.ctx.store.read(lambda tx: tx.get_collection(collection_id))
        return found.owner if found is not None else ""
