"""Four persistence processes on one stream while events of the same jobs arrive:
no job ever shows an older state after a newer one (stale writes: 0)."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from gateway.auth import issue_token
from tests.faults.faultkit import Cluster, drive, partitions_of, reconcile
from tests.waits import eventually

RANK = {"queued": 0, "verifying": 1, "processing": 2, "succeeded": 3, "failed": 3, "rejected": 3}

# Records every write to `jobs` that moves a job back: an older sequence, or an
# earlier status, over a newer one.
STALE_WRITES = """
CREATE TABLE IF NOT EXISTS stale_writes (job_id uuid, old_seq bigint, new_seq bigint,
                                         old_status text, new_status text);
CREATE OR REPLACE FUNCTION note_stale_write() RETURNS trigger AS $$
DECLARE rank jsonb := '{"queued":0,"verifying":1,"processing":2,
                        "succeeded":3,"failed":3,"rejected":3}';
BEGIN
  IF NEW.last_seq < OLD.last_seq OR (rank->>NEW.status)::int < (rank->>OLD.status)::int THEN
    INSERT INTO stale_writes VALUES (OLD.job_id, OLD.last_seq, NEW.last_seq, OLD.status, NEW.status);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
DROP TRIGGER IF EXISTS stale_write_watch ON jobs;
CREATE TRIGGER stale_write_watch BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION note_stale_write();
"""


@pytest.mark.timeout(600)
async def test_four_persistence_processes_never_go_back(
    cluster: Cluster, pool: asyncpg.Pool[Any]
) -> None:
    await pool.execute(STALE_WRITES)
    cluster.start("persistence-3")
    cluster.start("persistence-4")

    async def four_share() -> bool:
        held = await partitions_of(cluster)
        names = {f"persistence-{i}" for i in range(1, 5)}
        partitions = cluster.settings.partitions
        return names <= set(held) and sum(len(p) for p in held.values()) == partitions

    await eventually(four_share, within=60, what="four processes sharing the partitions")

    owner = f"four-{uuid.uuid4().hex[:8]}"
    load_task = asyncio.create_task(
        drive(cluster, 600, concurrency=16, owner=owner, name="four persistence")
    )
    # Meanwhile, read jobs as a client would and check no status goes backwards.
    regressions: list[tuple[str, str, str]] = []
    headers = {"Authorization": f"Bearer {issue_token(cluster.settings, owner)}"}
    seen: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=cluster.url, timeout=10) as api:
        while not load_task.done():
            page = (await api.get("/v1/jobs", params={"limit": 100}, headers=headers)).json()
            for job in page["items"]:
                before = seen.get(job["job_id"])
                if before is not None and RANK[job["status"]] < RANK[before]:
                    regressions.append((job["job_id"], before, job["status"]))
                seen[job["job_id"]] = job["status"]
            await asyncio.sleep(0.05)
    load = await load_task
    assert len(load.accepted) == 600, (load.refused, load.errors)
    statuses = await reconcile(pool, load)
    assert sorted(set(statuses.values())) == ["succeeded"]
    stale = await pool.fetchval("SELECT count(*) FROM stale_writes")
    assert stale == 0
    assert regressions == []
    held = await partitions_of(cluster)
    assert {f"persistence-{i}" for i in range(1, 5)} <= set(held)
    print(f"\nfour persistence: sent 600, accepted {len(load.accepted)}, stale writes {stale}")
