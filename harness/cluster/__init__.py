"""A suite spread over many machines on Dask distributed (``redlab suite --cluster``).

- connect.py: which cluster (``ssh://``, ``tcp://``, ``local://``), its client, and the
  checks that every worker can run a trial, before any trial starts;
- trial.py: what a worker runs, one trial as ``redlab run`` in a subprocess, its run
  folder sent back as an archive;
- gather.py: the suite's side: every trial shuffled over the workers, each trial's
  folder placed in its run's folder with where it ran (and any worker lost under it),
  each run's summary.csv recomputed from the files once its trials are in.

Dask schedules; RedLab only says what one trial is and where its results go.  Each worker
offers one ``lab`` resource and every trial asks for it, so a worker (one machine, or one
of several worker processes on a machine that has the CPUs) runs one trial at a time:
timing trials must not share a machine.  A worker lost in the middle of a trial has its
trial rerun on another by Dask's own rescheduling; the worker records each start of a
trial as a Dask event, so the rerun is recorded in the trial's row (``lost_workers``).
"""
