"""Every private Dagster API the project uses, in one place, each with why.

Dagster has no public name for these yet. Kept here so that a Dagster upgrade that moves one breaks one
module, and so that nothing else in the project imports from `dagster._...`.
"""

from __future__ import annotations

import dagster as dg

# The warm launcher (`launcher.py`) runs a run as `dagster api execute_run` does: its arguments, the body of
# that command (it starts the run's cancellation and metrics threads as Dagster configures them), and the
# SIGINT handling Dagster's run processes install.
from dagster._cli.api import _execute_run_command_body as execute_run_in_this_process

# What `define_asset_job` returns (a job resolved once the assets are known): the jobs factory names its type.
from dagster._core.definitions.unresolved_asset_job_definition import UnresolvedAssetJobDefinition

# A run launcher's interface (the team profile's, `team/launcher.py`): Dagster documents custom run launchers
# but exports their types only from these modules, and dagster-celery's tasks take packed arguments.
from dagster._core.launcher import CheckRunHealthResult, LaunchRunContext, ResumeRunContext, WorkerStatus

# The run tags Dagster itself writes for a partition and a partition range: the public API reads them
# (`context.partition_key`) but exports no constants, and our schedule, sensors and CLI must write them.
from dagster._core.storage.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    PARTITION_NAME_TAG as PARTITION_TAG,
)
from dagster._grpc.types import ExecuteRunArgs, ResumeRunArgs
from dagster._serdes import pack_value
from dagster._utils.interrupts import capture_interrupts

__all__ = [
    "ASSET_PARTITION_RANGE_END_TAG",
    "ASSET_PARTITION_RANGE_START_TAG",
    "PARTITION_TAG",
    "CheckRunHealthResult",
    "ExecuteRunArgs",
    "LaunchRunContext",
    "ResumeRunArgs",
    "ResumeRunContext",
    "UnresolvedAssetJobDefinition",
    "WorkerStatus",
    "capture_interrupts",
    "execute_run_in_this_process",
    "latest_check_evaluation",
    "pack_value",
]


def latest_check_evaluation(
    instance: dg.DagsterInstance, check_key: dg.AssetCheckKey, partition: str
) -> dg.AssetCheckEvaluation | None:
    """The latest evaluation of one check for one partition. The public `instance.get_latest_..._check`
    calls know no partitions; the event log's partition-filtered lookup is what the UI itself uses."""
    from dagster._core.event_api import PartitionKeyFilter

    check = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [check_key], partition_filter=PartitionKeyFilter(key=partition)
    ).get(check_key)
    return check.event.asset_check_evaluation if check and check.event else None
