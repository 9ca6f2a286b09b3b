"""The scheduler: fires the periodic sweeps at their cron times, once, whoever else is running.

- :mod:`producers.scheduler.schedules`: what runs when (the default set, from settings);
- :mod:`producers.scheduler.firing`: fire times in each schedule's zone, and the per-fire lock;
- :mod:`producers.scheduler.records`: the last fire of each schedule, kept in the database;
- :mod:`producers.scheduler.loop`: the loop that sleeps, catches up and fires.
"""
