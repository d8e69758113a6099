"""Live data is partitioned by the hour it arrived: bounded bookkeeping, 24 partitions a day."""

import dagster as dg

hourly_partitions = dg.HourlyPartitionsDefinition(start_date="2026-01-01-00:00", end_offset=1)
