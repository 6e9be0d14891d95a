"""The calls that find, tidy and cancel a job's batches at the provider (through ``provider.batch_api``)."""

from __future__ import annotations

from typing import Any

from ..providers.base import RunRefused, TransientError
from ..store import BatchRecord

ADOPT_SLACK = 300.0  # seconds of clock difference allowed when paging back to the job's first submission


async def batches_at_server(provider: Any, job: str, since: float) -> dict[str, Any]:
    """The job's batches at the server by input file id, paging back to the job's first submission
    (``batches.list`` has no metadata filter; it lists the newest first)."""
    found: dict[str, Any] = {}

    async def page_back(client: Any) -> None:
        after = None
        while True:
            page = await client.batches.list(limit=100, **({"after": after} if after else {}))
            items = list(page.data)
            for batch in items:
                if (batch.metadata or {}).get("mkflash_job") == job:
                    found.setdefault(batch.input_file_id, batch)
            if not items or not page.has_more or items[-1].created_at < since - ADOPT_SLACK:
                return
            after = items[-1].id

    await provider.batch_api(page_back)
    return found


async def delete_orphans(provider: Any, job: str, kept: set[str]) -> None:
    """Input files of this job that no batch written down uses (an upload whose id was never written)."""
    prefix = f"mkflash-{job}-"

    async def listing(client: Any) -> list[str]:
        ids = []
        async for item in client.files.list(purpose="batch"):
            if (item.filename or "").startswith(prefix) and item.id not in kept:
                ids.append(item.id)
        return ids

    try:
        orphans = await provider.batch_api(listing)
    except (TransientError, RunRefused):
        return  # a server that cannot list files: nothing to tidy
    for file_id in orphans:
        await delete_file(provider, file_id)


async def delete_file(provider: Any, file_id: str) -> None:
    try:
        await provider.batch_api(lambda client: client.files.delete(file_id))
    except (TransientError, RunRefused):
        pass  # gone already, or not ours to delete: the provider removes old files itself


async def content(provider: Any, file_id: str | None) -> str:
    """A result or error file's text ("" for none)."""
    if not file_id:
        return ""

    async def read(client: Any) -> str:
        response = await client.files.content(file_id)
        return response.text

    return await provider.batch_api(read)


def server_key(where: str, environ: Any) -> str | None:
    """The key for the server at ``where`` from the environment: the preset's variable whose address it is."""
    from ..providers.presets import PRESETS

    for preset in PRESETS.values():
        if preset.key_env and (preset.base_url or "https://api.openai.com/v1").rstrip("/") == where.rstrip("/"):
            return environ.get(preset.key_env)
    return environ.get("OPENAI_API_KEY")


async def cancel_open_batches(store: Any, records: list[BatchRecord], api_key: str | None,
                              environ: Any) -> list[str]:  # fmt: skip
    """Cancel ``records``' batches at their servers; a sentence for each. Raises the provider's errors."""
    from ..providers.openai_compat import OpenAICompatProvider

    said = []
    for record in records:
        where, _, model = record.server.rpartition(" ")
        default = where.rstrip("/") == "https://api.openai.com/v1"
        provider = OpenAICompatProvider(model=model, api_key=api_key or server_key(where, environ),
                                        base_url=None if default else where, stream=False)  # fmt: skip
        try:
            seen = await provider.batch_api(lambda client, record=record: client.batches.cancel(record.batch_id))
        finally:
            await provider.aclose()
        store.update_batch(record.name, status=seen.status)
        said.append(f"batch {record.batch_id}: {seen.status} (its answers so far are collected, and the rest sent "
                    "live, when the same command runs again)")  # fmt: skip
    return said
