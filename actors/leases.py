"""Partition leases in a JetStream KV bucket: which process applies which partition.

Each member heartbeats `<actor>.member.<id>`, claims free partitions up to its
fair share (partitions / live members, rounded up) with a create-if-absent, and
renews what it holds with a compare-and-set on the revision. The bucket's TTL
expires the keys of a member that died, so its partitions are taken over within
one TTL. Leases only spread the work: correctness never depends on them, since
applying an event twice changes nothing (see `actors.persistence`).
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import socket

import structlog
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from schemas import subjects

log = structlog.get_logger("actors.leases")

LEASE_REFRESH_SECONDS = 2.0
"""Live members renew their leases this often."""
LEASE_TTL_SECONDS = 3 * LEASE_REFRESH_SECONDS
"""The leases bucket's TTL: a dead member's leases lapse after this."""


def member_id(pid: int | None = None) -> str:
    """host-pid, in KV key characters, so `conveyor status` names the process."""
    host = re.sub(r"[^A-Za-z0-9_-]", "_", socket.gethostname())
    return f"{host}-{pid if pid is not None else os.getpid()}"


class Leases:
    def __init__(self, kv: KeyValue, actor: str, member: str, partitions: int) -> None:
        self._kv = kv
        self._actor = actor
        self._member = member.encode()
        self._member_key = subjects.member_lease(actor, member)
        self._partitions = partitions
        self.owned: dict[int, int] = {}  # partition -> revision of our lease
        self.surplus: dict[int, int] = {}  # no longer ours to work on, not yet released

    async def refresh(self) -> set[int]:
        """Heartbeat, renew, claim up to the fair share, give back the excess.

        While the actor is paused (`conveyor replay` holds every partition), hold none.
        """
        if await self._paused():
            self.surplus.update(self.owned)
            self.owned = {}
            return set()
        await self._kv.put(self._member_key, b"alive")
        fair = math.ceil(self._partitions / await self._members())
        held: dict[int, int] = {}
        for partition in range(self._partitions):
            revision = await self._take(partition, claim=len(held) < fair)
            if revision is not None:
                held[partition] = revision
        # Above the fair share (a member joined): give the last ones back, once the
        # caller has stopped working on them (`release_surplus`).
        for partition in sorted(held)[fair:]:
            self.surplus[partition] = held.pop(partition)
        if set(held) != set(self.owned):
            log.info("partitions", actor=self._actor, owned=sorted(held), fair_share=fair)
        self.owned = held
        return set(held)

    async def pause(self) -> None:
        """Ask every member to stand down; lapses with the bucket TTL unless renewed."""
        await self._kv.put(subjects.pause_lease(self._actor), self._member)

    async def resume(self) -> None:
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.delete(subjects.pause_lease(self._actor))

    async def claim_all(self) -> set[int]:
        """Take every partition that is free (after `pause`, all become free)."""
        for partition in range(self._partitions):
            revision = await self._take(partition, claim=True)
            if revision is not None:
                self.owned[partition] = revision
        return set(self.owned)

    async def _take(self, partition: int, *, claim: bool) -> int | None:
        """Renew our lease on `partition`, or (if `claim`) create it when free.

        The new revision, or None when it is someone else's (a wrong revision means
        it expired and another member took it, or another claimed it first).
        """
        key = subjects.partition_lease(self._actor, partition)
        try:
            entry = await self._kv.get(key)
        except KeyNotFoundError:
            entry = None
        with contextlib.suppress(KeyWrongLastSequenceError):
            if entry is not None and entry.value == self._member and entry.revision:
                return await self._kv.update(key, self._member, last=entry.revision)
            if entry is None and claim:
                return await self._kv.create(key, self._member)
        return None

    async def _paused(self) -> bool:
        try:
            entry = await self._kv.get(subjects.pause_lease(self._actor))
        except KeyNotFoundError:
            return False
        return entry.value != self._member

    async def release_surplus(self) -> None:
        for partition, revision in list(self.surplus.items()):
            await self._release(partition, revision)
        self.surplus = {}

    async def release_all(self) -> None:
        self.surplus.update(self.owned)
        self.owned = {}
        await self.release_surplus()
        with contextlib.suppress(KeyNotFoundError):
            await self._kv.delete(self._member_key)

    async def _release(self, partition: int, revision: int) -> None:
        with contextlib.suppress(KeyNotFoundError, KeyWrongLastSequenceError):
            await self._kv.delete(subjects.partition_lease(self._actor, partition), last=revision)

    async def _members(self) -> int:
        # KeyValue.keys() filters by substring, not by wildcard: watch the pattern.
        watcher = await self._kv.watch(
            subjects.member_lease(self._actor, "*"), ignore_deletes=True, meta_only=True
        )
        count = 0
        try:
            async for entry in watcher:
                if entry is None:  # the end of what is stored now
                    break
                count += 1
        finally:
            await watcher.stop()  # type: ignore[no-untyped-call]
        return max(count, 1)
