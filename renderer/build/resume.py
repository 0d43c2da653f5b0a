"""What ``build --resume`` does in the driver: skip the chunks a killed build committed,
and tell what it took over or removed. The journal itself is
:mod:`renderer.build.journal`."""

from __future__ import annotations

from collections.abc import Iterator
from itertools import islice

from renderer.build.executors import Executor
from renderer.build.journal import Checkpoint
from renderer.build.output import OutputWriter
from segments.errors import ConfigError
from segments.profiles.spool import ValidatedChunk


def skip_committed(
    chunks: Iterator[ValidatedChunk], checkpoint: Checkpoint, executor: Executor
) -> None:
    """Read the chunks a killed build committed, without rendering them: they are read
    and validated all the same (the duplicate-id check remembers their ids, row numbers
    run on), and the executor numbers their parts (a bundle's shards) as it did."""
    rows = 0
    for chunk in islice(chunks, checkpoint.chunks):
        executor.skip(chunk)
        rows += chunk.rows
    if rows != checkpoint.state.get("rows", 0):  # a change the file stamps did not show
        raise ConfigError(
            f"cannot resume: the killed build had read {checkpoint.state.get('rows', 0)} rows "
            f"in {checkpoint.chunks} chunks, the profiles now give {rows}",
            hint="build again without --resume",
        )


def resume_notes(writer: OutputWriter, resume: bool) -> list[str]:
    """What a build took over or removed of killed builds, for the CLI to print."""
    notes = []
    if writer.resumed is not None:
        checkpoint = writer.resumed.checkpoint
        rows = checkpoint.state.get("rows", 0)
        notes.append(
            f"resumed the killed build {writer.resumed.source}: {checkpoint.chunks} chunk(s) "
            f"({rows} rows) were complete and are kept"
        )
    elif resume:
        notes.append(
            "nothing to resume (no killed build of this output folder): starting from the first row"
        )
    for folder in writer.discarded:
        notes.append(f"removed {folder.name}, the partial output of a killed build")
    if writer.discarded and not resume:
        notes.append("`build --resume` continues a killed build instead")
    return notes
