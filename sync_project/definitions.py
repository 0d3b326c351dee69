"""The one Definitions object of the project: assets, checks, jobs, schedules, sensors, resources.

No logic lives here; each concern has its own module.
"""

from __future__ import annotations

import dagster as dg

defs = dg.Definitions()
