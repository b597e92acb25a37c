"""lsci benchmarks: ``python -m bench`` (or ``make bench``).

Each suite module measures one part of lsci against the baselines a user would otherwise pick and
against the machine's memory-bandwidth ceiling, and states its targets as ratios measured in the
same run (the machine may be shared and noisy: ratios from one run are comparable, absolute
figures from different runs less so; the JSON records the load average at start and end).
Every baseline gets its best call (preallocated outputs, no needless casts or temporaries) and
the same threads as lsci; the contrast suite states each ratio on one thread and on all threads.
A missed target is printed as MISSED.
"""
