"""Batch mode: a provider's own batch engine (OpenAI's and Groq's ``/v1/files`` + ``/v1/batches``) behind the
transport's door, for large jobs at half the price.

A run's summary goes live; each whole chunk's request becomes a line of a JSONL input file instead of a call.
The ``BatchDesk`` (one per job, shared by its documents' runs) gathers the lines sent together, splits them at the
provider's limits, uploads each file, starts a batch on it, polls the batches (backing off) and, as each one ends,
keeps its result files in the store and answers every line by its ``custom_id`` (``session:chunk``; the output's
order is not the input's). An answer then takes exactly the path a live one takes: parsing, repair, the gate, the
store, events. Repairs and split-in-halves calls go live; a line in the error file, or one lost to the batch's
expiry or cancellation, is sent again live.

Never paying twice: the input file's name (which carries the job's id) is written down before the upload, its id
before the batch is created, the batch's id as soon as it exists, and the batch carries the job in its metadata.
A run that starts again (after Ctrl+C, a crash, a closed laptop) takes up the batches it finds written down; one
that died between creating a batch and writing its id finds it by paging ``batches.list`` back to the job's first
submission; input files of the job that no batch took are deleted.

The rooms: ``files`` (input files, their limits, the lines of result files), ``server`` (the calls that find,
tidy and cancel batches at the provider), ``desk`` (submitting, polling, answering) and ``transport`` (a run's
door: whole chunks to the desk, the rest live).
"""

from ..providers.base import NoBatchEngine
from .desk import FIRST_POLL, POLL_CAP, BatchDesk, BatchMiss, BatchProgress
from .files import LIMITS, BatchLimits, batch_line, split_lines
from .server import cancel_open_batches
from .transport import BatchTransport

__all__ = ["FIRST_POLL", "LIMITS", "POLL_CAP", "BatchDesk", "BatchLimits", "BatchMiss", "BatchProgress",
           "BatchTransport", "NoBatchEngine", "batch_line", "cancel_open_batches", "split_lines"]  # fmt: skip
