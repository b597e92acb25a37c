"""lsci benchmarks: ``python -m bench`` (or ``make bench``).

Each suite module measures one part of lsci against the baselines a user would otherwise pick and
against the machine's memory-bandwidth ceiling, and states its targets as ratios measured in the
same run (the machine may be shared and noisy: ratios from one run are comparable, absolute
figures from different runs less so).
"""
