"""The project's Definitions: every mirror declared in `sync_project/defs/` (a `SnowflakeMirrorComponent`
each), run in-process.

`dg dev`, `dg check defs`, `dagster dev -w workspace.yaml` and the run processes all load this module. No
logic lives here: a mirror's definitions come from `mirror_definitions`.
"""

from pathlib import Path

import dagster as dg
from dagster.components.core.component_tree import ComponentTree

from sync_project.mirror_definitions import mirror_definitions
from sync_project.process import skip_final_collection
from sync_project.settings import Settings


def _in_process() -> dg.Definitions:
    """One table per run; parallelism comes from concurrent runs, so a step needs no process of its own (the
    multiprocess executor would pay Python and Dagster start-up again for every step)."""
    return dg.Definitions(executor=dg.in_process_executor)


def build_definitions(settings: Settings) -> dg.Definitions:
    """The first mirror alone, for given settings (tests build it against their own folders)."""
    return dg.Definitions.merge(mirror_definitions(settings), _in_process())


def load_definitions() -> dg.Definitions:
    """Every mirror of `sync_project/defs/` (each folder's `defs.yaml`), as `dg` finds them.

    Each folder's component is built on its own rather than through `dg.load_from_defs_folder`: the defs folder's
    own component also lists every component type the environment's packages register, importing them, and
    dagster-dbt (the `dbt` extra) is one: 1.3 s more in every run process. `dg list components` still lists
    them."""
    defs_folder = Path(__file__).parent / "defs"
    tree = ComponentTree.for_project(path_within_project=defs_folder)
    mirrors = sorted(folder.name for folder in defs_folder.iterdir() if (folder / "defs.yaml").is_file())
    return dg.Definitions.merge(*(tree.build_defs_at_path(name) for name in mirrors), _in_process())


skip_final_collection()
defs = load_definitions()
