"""`outreach demo`: the whole system on the embedded default, over four simulated days.

A fresh SQLite file, the in-process broker and worker, the `log` channel, sample data, and the
real schedules fired by the real scheduler on a fake clock. :func:`producers.demo.run.run_demo`
does the work and returns the day-by-day report; :mod:`producers.demo.report` prints it.
"""
