"""Tabular NAS benchmarks: every architecture of a small space, trained, as a lookup table.

`TabularBenchmark` answers what an architecture scores without training it, and
`run_oracle` runs any KerasTuner oracle against a table in seconds, tracking its regret.
"""

from tfnas.nasbench.tabular import (
    DEFAULT,
    OracleRun,
    Record,
    TabularBenchmark,
    available,
    run_oracle,
)

__all__ = ["DEFAULT", "OracleRun", "Record", "TabularBenchmark", "available", "run_oracle"]
